/* log: the node's log sink (see log.h). Any thread; one mutex guards the FILE and orders whole
 * lines, so concurrent writers never interleave. Each line is flushed at once: a crash never
 * eats the lines that explain it. */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_file; /* NULL = stderr */
static char *log_path; /* the open file's path, for log_reopen */
static atomic_int log_level = LOG_INFO;
static atomic_uint_fast64_t log_counts[4];
static int log_local_time; /* set once before the workers start */

static const char *const level_colours[] = {"\x1b[2m", "", "\x1b[33m", "\x1b[31m"};

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

int log_open(const char *path)
{
    FILE *f = NULL;
    if (path) {
        f = fopen(path, "a");
        if (!f)
            return -errno;
    }
    pthread_mutex_lock(&log_lock);
    if (log_file)
        fclose(log_file);
    free(log_path);
    log_file = f;
    log_path = path ? strdup(path) : NULL;
    pthread_mutex_unlock(&log_lock);
    return 0;
}

int log_reopen(void)
{
    int rc = 0;
    pthread_mutex_lock(&log_lock);
    if (log_path) {
        FILE *f = fopen(log_path, "a");
        if (f) {
            fclose(log_file);
            log_file = f;
        } else {
            rc = -errno;
        }
    }
    pthread_mutex_unlock(&log_lock);
    return rc;
}

void log_close(void)
{
    pthread_mutex_lock(&log_lock);
    if (log_file)
        fclose(log_file);
    log_file = NULL;
    free(log_path);
    log_path = NULL;
    pthread_mutex_unlock(&log_lock);
}

void log_set_level(enum log_level level) { atomic_store(&log_level, level); }
void log_set_local_time(int local) { log_local_time = local; }
enum log_level log_get_level(void) { return (enum log_level)atomic_load(&log_level); }

int log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (name && strcasecmp(name, level_names[i]) == 0)
            return i;
    if (name && strcasecmp(name, "warning") == 0)
        return LOG_WARN;
    return -1;
}

const char *log_level_name(enum log_level level)
{
    return (unsigned)level < 4 ? level_names[level] : "?";
}

uint64_t log_count(enum log_level level)
{
    return (unsigned)level < 4 ? atomic_load(&log_counts[level]) : 0;
}

/* "2026-12-06T05:10:14.425Z" or "2026-12-06T06:10:14.425+01:00" into buf (>= 32 bytes). */
static int format_time(char *buf, size_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    if (log_local_time)
        localtime_r(&ts.tv_sec, &tm);
    else
        gmtime_r(&ts.tv_sec, &tm);
    size_t used = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    used += (size_t)snprintf(buf + used, n - used, ".%03ld", ts.tv_nsec / 1000000);
    if (!log_local_time)
        return (int)(used + (size_t)snprintf(buf + used, n - used, "Z"));
    long off = tm.tm_gmtoff / 60;
    return (int)(used + (size_t)snprintf(buf + used, n - used, "%c%02ld:%02ld", off < 0 ? '-' : '+',
                                         labs(off) / 60, labs(off) % 60));
}

/* The text, every line after the first indented by two spaces (trailing newlines dropped). */
static void write_text(FILE *f, const char *text, size_t len)
{
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    for (;;) {
        const char *nl = memchr(text, '\n', len);
        size_t line = nl ? (size_t)(nl - text) + 1 : len;
        fwrite(text, 1, line, f);
        if (!nl)
            break;
        fputs("  ", f);
        text += line;
        len -= line;
    }
    fputc('\n', f);
}

void log_text(uint32_t source, enum log_level level, const char *text, size_t len)
{
    if ((int)level < atomic_load(&log_level))
        return;
    unsigned lv = (unsigned)level & 3;
    atomic_fetch_add(&log_counts[lv], 1);
    char when[48];
    format_time(when, sizeof when);
    pthread_mutex_lock(&log_lock);
    FILE *f = log_file ? log_file : stderr;
    int colour = level_colours[lv][0] && isatty(fileno(f));
    fprintf(f, "%s %s%s%s [:%08x] ", when, colour ? level_colours[lv] : "", level_names[lv],
            colour ? "\x1b[0m" : "", source);
    write_text(f, text, len);
    fflush(f);
    pthread_mutex_unlock(&log_lock);
}

void log_write(uint32_t source, enum log_level level, const char *fmt, ...)
{
    if ((int)level < atomic_load(&log_level))
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof buf) {
        log_text(source, level, buf, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        log_text(source, level, buf, sizeof buf - 1);
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    log_text(source, level, big, (size_t)n);
    free(big);
}
