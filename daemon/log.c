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

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_file;        /* NULL = stderr */
static char *log_path;        /* the open file's path, for log_reopen */
static atomic_int log_level = LOG_INFO;
static atomic_uint_fast64_t log_counts[4];

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

void log_text(uint32_t source, enum log_level level, const char *text, size_t len)
{
    if ((int)level < atomic_load(&log_level))
        return;
    atomic_fetch_add(&log_counts[(unsigned)level & 3], 1);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    localtime_r(&tv.tv_sec, &tm);
    char head[64];
    int n = snprintf(head, sizeof head, "%02d/%02d/%02d %02d:%02d:%02d.%02d %s [:%08x] ", tm.tm_mday,
                     tm.tm_mon + 1, tm.tm_year % 100, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(tv.tv_usec / 10000), level_names[(unsigned)level & 3], source);
    pthread_mutex_lock(&log_lock);
    FILE *f = log_file ? log_file : stderr;
    fwrite(head, 1, (size_t)n, f);
    fwrite(text, 1, len, f);
    fputc('\n', f);
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
