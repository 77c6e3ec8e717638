/* startup: becoming a running node and telling others. The pidfile, daemonizing (with a pipe
 * that tells `skyjet -d` whether the node came up), the start verdict that bootstrap reports
 * once the start service has finished and its listeners are open (or failed), and systemd's
 * notifications (sd_notify READY, RELOADING, STOPPING). The verdict may be reported from any
 * thread; everything else is called by main only. */
#ifndef SKYJET_STARTUP_H
#define SKYJET_STARTUP_H

#include <stddef.h>

enum startup_state { STARTUP_PENDING, STARTUP_DONE, STARTUP_FAILED };

/* Refuse to start when the pidfile names a live process (-1, message on stderr). */
int startup_pidfile_check(const char *path);
/* Write our pid atomically (tmp file + rename). Returns 0 or -1 with errno. */
int startup_pidfile_write(const char *path);
/* Fork into the background; the launching process waits for startup_succeeded/startup_error
 * and exits 0 or 1 with the reason. Returns 0 in the daemon, -1 with errno. */
int startup_daemonize(void);
/* A start-up error: to stderr, or through the readiness pipe when daemonized. */
void startup_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The node is up: the launching process exits 0, systemd gets READY=1. */
void startup_succeeded(void);

/* The start verdict (bootstrap: skynet.core startup). The first report wins. */
void startup_report(int ok, const char *reason);
/* The verdict so far; on STARTUP_FAILED the reason is copied into `reason`. */
enum startup_state startup_state(char *reason, size_t n);

/* systemd's notify protocol (no-op without $NOTIFY_SOCKET): "RELOADING=1", "STOPPING=1"... */
void startup_notify(const char *state);

#endif
