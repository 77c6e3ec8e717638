/* startup: see startup.h. The verdict is a mutex-guarded state and reason (bootstrap reports it
 * from a worker; main polls it); the pidfile, daemonizing and notifications run on main only. */
#include "startup.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t verdict_lock = PTHREAD_MUTEX_INITIALIZER;
static enum startup_state verdict = STARTUP_PENDING;
static char verdict_reason[1024];

/* While starting in the background, the write end of the pipe the launching process reads. */
static int ready_fd = -1;

int startup_pidfile_check(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    long pid = 0;
    int n = fscanf(f, "%ld", &pid);
    fclose(f);
    if (n == 1 && pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM)) {
        fprintf(stderr, "skyjet: pidfile %s names a running process (pid %ld); not starting\n",
                path, pid);
        return -1;
    }
    return 0;
}

int startup_pidfile_write(const char *path)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "%ld\n", (long)getpid());
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        return -1;
    return 0;
}

/* The launching process: wait for "ok" or the reason on the pipe, exit 0 or 1. */
static void wait_for_daemon(int fd)
{
    char buf[1024];
    size_t used = 0;
    ssize_t n;
    while (used < sizeof buf - 1 && (n = read(fd, buf + used, sizeof buf - 1 - used)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        used += (size_t)n;
    }
    buf[used] = '\0';
    if (used >= 2 && memcmp(buf, "ok", 2) == 0)
        _exit(0);
    fprintf(stderr, "%s", used ? buf : "skyjet: the node stopped during start-up (see its log)\n");
    _exit(1);
}

int startup_daemonize(void)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0) {
        close(p[1]);
        wait_for_daemon(p[0]);
    }
    close(p[0]);
    if (setsid() < 0)
        return -1;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0)
        _exit(0);
    ready_fd = p[1];
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    return 0;
}

void startup_error(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof buf)
        n = sizeof buf - 1;
    if (ready_fd >= 0) {
        ssize_t w = write(ready_fd, buf, (size_t)n);
        (void)w;
        close(ready_fd);
        ready_fd = -1;
    } else {
        fputs(buf, stderr);
    }
}

void startup_succeeded(void)
{
    if (ready_fd >= 0) {
        ssize_t w = write(ready_fd, "ok", 2);
        (void)w;
        close(ready_fd);
        ready_fd = -1;
    }
    startup_notify("READY=1");
}

void startup_report(int ok, const char *reason)
{
    pthread_mutex_lock(&verdict_lock);
    if (verdict == STARTUP_PENDING) {
        verdict = ok ? STARTUP_DONE : STARTUP_FAILED;
        snprintf(verdict_reason, sizeof verdict_reason, "%s", reason ? reason : "");
    }
    pthread_mutex_unlock(&verdict_lock);
}

enum startup_state startup_state(char *reason, size_t n)
{
    pthread_mutex_lock(&verdict_lock);
    enum startup_state s = verdict;
    if (reason && n)
        snprintf(reason, n, "%s", verdict_reason);
    pthread_mutex_unlock(&verdict_lock);
    return s;
}

void startup_notify(const char *state)
{
    if (strcmp(state, "RELOADING=1") == 0) {
        /* systemd (Type=notify-reload) wants the monotonic time of the reload request with it */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
                   (unsigned long long)ts.tv_sec * 1000000ULL +
                       (unsigned long long)ts.tv_nsec / 1000);
        return;
    }
    sd_notify(0, state);
}
