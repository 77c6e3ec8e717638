/* log: the node's log sink. Any thread may call log_*; one mutex orders whole entries.
 * Entry format: "2026-12-06T05:10:14.425Z LEVEL [:%08x] text\n", the time ISO-8601 with
 * milliseconds and the zone offset (UTC by default, local time with log_set_local_time); the
 * "[:%08x] " prefix sits right before the text so Skynet log scrapers still match. A multi-line
 * text (a traceback) continues on lines indented by two spaces, so every line that starts in
 * column 0 starts an entry. The level is coloured only when the output is a terminal. Output is
 * stderr until log_open() names a file; log_reopen() reopens that file (SIGUSR1, logrotate). */
#ifndef SKYJET_LOG_H
#define SKYJET_LOG_H

#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

/* Open (append) the log file; NULL means stderr. Returns 0 or -errno. */
int log_open(const char *path);
/* Reopen the current file (after logrotate moved it). Returns 0 or -errno. */
int log_reopen(void);
void log_close(void);
void log_set_level(enum log_level level);
/* Timestamps in local time (with its offset) instead of UTC. Call before other threads log. */
void log_set_local_time(int local);
enum log_level log_get_level(void);
/* "debug"/"info"/"warn"/"error" -> level, or -1. */
int log_level_parse(const char *name);
const char *log_level_name(enum log_level level);

/* Write one line from `source` (a service handle, 0 for the runtime). */
void log_text(uint32_t source, enum log_level level, const char *text, size_t len);
void log_write(uint32_t source, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Counters for metrics: lines written per level. */
uint64_t log_count(enum log_level level);

#endif
