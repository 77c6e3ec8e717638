/* main: the skyjet process in three steps. node_start reads the command line and the INI file,
 * wires the floors together (log, services, clock, workers, monitor, Lua host), optionally
 * daemonizes and launches the logger and bootstrap services; node_run owns signals (the main
 * thread waits in sigtimedwait while every other thread has all signals blocked) and the start
 * verdict; node_stop undoes exactly what node_start did. The node ends when no service is left
 * (abort), on SIGTERM/SIGINT, or when its start failed (exit status 1). */
#include "clock.h"
#include "config.h"
#include "env.h"
#include "handle.h"
#include "host.h"
#include "log.h"
#include "logger.h"
#include "monitor.h"
#include "mq.h"
#include "preflight.h"
#include "reactor.h"
#include "salloc.h"
#include "scheduler.h"
#include "service.h"
#include "socketdriver.h"
#include "startup.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
    "usage: skyjet [options] CONFIG.ini\n"
    "\n"
    "Runs a skyjet node: Lua services (Skynet's API) on a worker-thread scheduler.\n"
    "\n"
    "options:\n"
    "  -d           run in the background (needs [node] daemon = PIDFILE)\n"
    "  -t, --test   check the config file and exit\n"
    "  -h, --help   this text\n"
    "  -v, --version\n"
    "\n"
    "signals: SIGHUP reloads the cluster file, SIGUSR1 reopens the log file,\n"
    "         SIGTERM/SIGINT stop the node.\n"
    "exit status: 0 after a normal stop, 1 when the config is invalid or the start failed\n"
    "         (the start service or a listener it asked for), 2 for a usage error.\n"
    "\n"
    "config keys:\n";

/* The folder holding lualib/ and service/: next to the binary (a build tree) or
 * <prefix>/share/skyjet (an installed tree). */
static int find_root(char *out)
{
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0)
        return -1;
    exe[len] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    const char *candidates[] = {"%s", "%s/..", "%s/../share/skyjet"};
    for (size_t i = 0; i < sizeof candidates / sizeof *candidates; i++) {
        char dir[PATH_MAX], probe[PATH_MAX + 32];
        snprintf(dir, sizeof dir, candidates[i], exe);
        snprintf(probe, sizeof probe, "%s/lualib/skynet.lua", dir);
        if (access(probe, R_OK) == 0 && realpath(dir, out))
            return 0;
    }
    return -1;
}

static struct reactor *reactor;

/* A socket event (PTYPE_SOCKET from source 0) carries a second buffer: free it too when the event
 * is dropped unread. The socket layer clears ev->data when it takes the bytes. */
static void free_message_data(int type, uint32_t source, void *data, size_t size)
{
    if (type == PTYPE_SOCKET && source == 0 && size >= sizeof(struct reactor_event))
        free(((struct reactor_event *)data)->data);
}

static void deliver_socket_event(void *ud, uint32_t owner, struct reactor_event *ev, size_t size)
{
    (void)ud;
    service_send(0, owner, PTYPE_SOCKET, 0, ev, size);
}

static void service_retired(uint32_t handle)
{
    if (reactor)
        reactor_close_owner(reactor, handle);
}

/* The main thread's timings, each named for what it waits for. */
enum {
    TICK_MS = 100,            /* signal wait; housekeeping and the start verdict run this often */
    TRIM_QUIET_MS = 1000,     /* no launch or release for this long: churn has settled */
    TRIM_EVERY_MS = 10000,    /* trim at least this often */
    TRIM_RELEASED = 64,       /* services released since the last trim that make a trim worth it */
    STOP_POLL_MS = 10,        /* graceful stop: how often in-flight work is looked at */
    SETTLED_MS = 50,          /* ...and how long it must stay settled */
    RETIRE_TIMEOUT_MS = 2000, /* every service retiring after the graceful phase */
    FAILED_TIMEOUT_MS = 1000, /* the in-flight work of a node whose start failed */
    DRAIN_TIMEOUT_MS = 2000,  /* the workers freeing the queues of released services */
};

static struct timespec ms_span(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    return ts;
}

/* Poll `done` every poll_ms for up to timeout_ms; returns whether it became true. */
static int wait_until(int (*done)(void), int timeout_ms, int poll_ms)
{
    struct timespec ts = ms_span(poll_ms);
    for (int waited = 0; waited < timeout_ms; waited += poll_ms) {
        if (done())
            return 1;
        nanosleep(&ts, NULL);
    }
    return done();
}

static int no_service_left(void) { return service_count() == 0 && mq_global_empty(); }
static int queues_freed(void) { return mq_live() == 0 && mq_global_empty(); }
static int work_settled(void) { return service_holds() <= 0 && mq_global_empty(); }

/* Give memory back to the system: after service churn has settled (at least TRIM_RELEASED
 * services released since the last trim and no launch or release for TRIM_QUIET_MS: trimming
 * during a spawn storm would only make the next allocations fault the pages in again), and
 * otherwise every TRIM_EVERY_MS. Large buffers are kept in the heap between trims (see
 * tune_process: M_MMAP_THRESHOLD), which is what makes big cluster messages fast. Called from
 * the main loop every TICK_MS. */
static void housekeeping(void)
{
    static uint64_t trimmed_at, last_launched, last_released, quiet_ms, since_trim_ms;
    uint64_t launched = service_launched_total(), released = service_released_total();
    int quiet = launched == last_launched && released == last_released;
    quiet_ms = quiet ? quiet_ms + TICK_MS : 0;
    since_trim_ms += TICK_MS;
    last_launched = launched;
    last_released = released;
    if ((released - trimmed_at >= TRIM_RELEASED && quiet_ms >= TRIM_QUIET_MS) ||
        since_trim_ms >= TRIM_EVERY_MS) {
        trimmed_at = released;
        since_trim_ms = 0;
        malloc_trim(0);
        salloc_trim();
    }
}

/* A text command to a named service from the runtime (source 0). */
static void notify_service(const char *name, const char *text)
{
    uint32_t h = service_resolve(name);
    char *copy = h ? strdup(text) : NULL;
    if (copy)
        service_send(0, h, PTYPE_TEXT, 0, copy, strlen(copy));
}

/* Stop accepting and starting new work, let in-flight work finish for up to timeout_ms
 * (services that still owe answers hold the node: service_hold), then retire every service
 * (their sockets close, so peers see the links go). A second SIGTERM/SIGINT cuts the wait
 * short. */
static void graceful_stop(int timeout_ms, const sigset_t *signals)
{
    service_set_stopping();
    notify_service(".clusterd", "shutdown");
    notify_service(".launcher", "shutdown");
    struct timespec poll = ms_span(STOP_POLL_MS);
    int settled_ms = 0, waited = 0;
    for (; waited < timeout_ms && settled_ms < SETTLED_MS; waited += STOP_POLL_MS) {
        int sig = sigtimedwait(signals, NULL, &poll);
        if (sig == SIGTERM || sig == SIGINT) {
            log_write(0, LOG_WARN, "second %s: stopping now", strsignal(sig));
            break;
        }
        settled_ms = work_settled() ? settled_ms + STOP_POLL_MS : 0;
    }
    if (waited >= timeout_ms && settled_ms < SETTLED_MS)
        log_write(0, LOG_WARN, "shutdown_timeout (%d ms) reached with work in flight", timeout_ms);
    service_abort();
    wait_until(no_service_left, RETIRE_TIMEOUT_MS, STOP_POLL_MS);
}

/* ---- the node: start, run, stop ---- */

struct node {
    struct node_config cfg;
    char root[PATH_MAX];
    const char *config_path;
    int want_daemon, check_only;
    int config_loaded, pidfile_written, log_opened, runtime_started;
    int ready; /* the start verdict was "done" and readiness went out */
};

/* The command line. Returns -1 to go on, or the exit status (help, version, usage error). */
static int parse_args(struct node *n, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("%s%s", usage, config_help());
            return 0;
        }
        if (!strcmp(a, "-v") || !strcmp(a, "--version")) {
            printf("skyjet %s\n", SKYJET_VERSION);
            return 0;
        }
        if (!strcmp(a, "-d")) {
            n->want_daemon = 1;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--test")) {
            n->check_only = 1;
        } else if (a[0] == '-') {
            fprintf(stderr, "skyjet: unknown option %s (try --help)\n", a);
            return 2;
        } else if (n->config_path) {
            fprintf(stderr, "skyjet: one config file only (got %s and %s)\n", n->config_path, a);
            return 2;
        } else {
            n->config_path = a;
        }
    }
    if (!n->config_path) {
        fprintf(stderr, "skyjet: no config file given\n%s", usage);
        return 2;
    }
    return -1;
}

static int load_config(struct node *n)
{
    if (find_root(n->root) != 0) {
        fprintf(stderr, "skyjet: cannot find lualib/skynet.lua next to the binary or in "
                        "../share/skyjet\n");
        return -1;
    }
    env_init();
    char err[4096];
    if (config_load(n->config_path, n->root, &n->cfg, err, sizeof err) != 0) {
        for (char *line = strtok(err, "\n"); line; line = strtok(NULL, "\n"))
            fprintf(stderr, "skyjet: %s\n", line);
        return -1;
    }
    n->config_loaded = 1;
    if (n->want_daemon && !n->cfg.pidfile) {
        fprintf(stderr, "skyjet: -d needs [node] daemon = PIDFILE in %s\n", n->cfg.path);
        return -1;
    }
    return 0;
}

/* --test: the config loaded; now what the node would find when it starts. */
static int check_config(struct node *n)
{
    char err[4096];
    if (preflight_check(&n->cfg, err, sizeof err) > 0) {
        for (char *line = strtok(err, "\n"); line; line = strtok(NULL, "\n"))
            fprintf(stderr, "skyjet: %s: %s\n", n->config_path, line);
        return 1;
    }
    printf("skyjet: %s is valid\n", n->cfg.path);
    return 0;
}

/* [node] daemon: refuse a live pidfile, go to the background, write ours. */
static int detach(struct node *n)
{
    const char *pidfile = n->cfg.pidfile;
    if (startup_pidfile_check(pidfile) != 0)
        return -1;
    if (startup_daemonize() != 0) {
        fprintf(stderr, "skyjet: cannot daemonize: %s\n", strerror(errno));
        return -1;
    }
    if (startup_pidfile_write(pidfile) != 0) {
        startup_error("skyjet: cannot write pidfile %s: %s\n", pidfile, strerror(errno));
        return -1;
    }
    n->pidfile_written = 1;
    return 0;
}

/* Process-wide settings: heap behaviour and the file descriptor limit. */
static void tune_process(void)
{
    /* Large message buffers (a 1 MiB cluster reply is copied a few times on its way) come from
     * the heap instead of fresh mmaps: mapping and faulting in new pages for every big message
     * cost more than the copies (4x on 1 MiB echoes here). housekeeping() trims the heap. */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    /* A node holds many sockets: take every file descriptor the hard limit allows. */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
#if defined(__SANITIZE_ADDRESS__)
    env_set("skyjet_sanitizer", "address"); /* tests skip RSS measurements under ASan */
#endif
}

/* Services, the Lua host, the reactor and the runtime threads. */
static int start_runtime(struct node *n)
{
    static const struct service_hooks hooks = {scheduler_wakeup, service_retired,
                                               free_message_data};
    service_init(&hooks);
    service_register_module(&host_module);
    service_set_profile(n->cfg.profile);
    service_register_module(&logger_module);
    struct host_paths hp = {n->root,      n->cfg.service_path, n->cfg.lib_path,
                            n->cfg.cpath, n->cfg.preload,      n->cfg.jit};
    host_configure(&hp);
    n->runtime_started = 1;
    struct reactor_config rc = {.deliver = deliver_socket_event,
                                .high_water = n->cfg.socket_high_water,
                                .output_limit = n->cfg.socket_output_limit};
    reactor = reactor_create(&rc);
    if (!reactor || reactor_start(reactor) != 0) {
        startup_error("skyjet: cannot start the reactor\n");
        return -1;
    }
    socketdriver_init(reactor);
    if (clock_start() != 0 || scheduler_start(n->cfg.threads) != 0 ||
        monitor_start(n->cfg.stuck_seconds) != 0) {
        startup_error("skyjet: cannot start the runtime threads\n");
        return -1;
    }
    return 0;
}

/* The logger and bootstrap services; bootstrap reports the start verdict later (node_run). */
static int launch_services(struct node *n)
{
    log_write(0, LOG_INFO, "skyjet %s node %s starting: %d threads, config %s", SKYJET_VERSION,
              n->cfg.name, n->cfg.threads, n->cfg.path);
    uint32_t logger = service_launch("logger", "");
    if (logger)
        handle_name(logger, "logger");
    const char *args = strchr(n->cfg.bootstrap, ' ');
    if (!service_launch(n->cfg.bootstrap, args ? args + 1 : "")) {
        log_write(0, LOG_ERROR, "Bootstrap error : %s", n->cfg.bootstrap);
        startup_error("skyjet: Bootstrap error : %s\n", n->cfg.bootstrap);
        return -1;
    }
    return 0;
}

static int node_start(struct node *n)
{
    if (load_config(n) != 0)
        return -1;
    /* Every thread started from here inherits a full signal mask; only main takes signals (a
     * SIGTERM that arrives during start-up waits for the main loop instead of killing us). */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (n->cfg.pidfile && detach(n) != 0)
        return -1;
    if (n->cfg.logfile && log_open(n->cfg.logfile) != 0) {
        startup_error("skyjet: cannot open log file %s: %s\n", n->cfg.logfile, strerror(errno));
        return -1;
    }
    n->log_opened = 1;
    log_set_level((enum log_level)n->cfg.loglevel);
    log_set_local_time(strcmp(n->cfg.logtime, "local") == 0);
    tune_process();
    if (start_runtime(n) != 0 || launch_services(n) != 0)
        return -1;
    return 0;
}

/* Poll bootstrap's verdict: readiness out once the start finished; 1 when it failed. */
static int check_start(struct node *n)
{
    if (n->ready)
        return 0;
    char reason[1024];
    enum startup_state st = startup_state(reason, sizeof reason);
    if (st == STARTUP_DONE) {
        n->ready = 1;
        startup_succeeded();
        log_write(0, LOG_INFO, "node %s started", n->cfg.name);
    } else if (st == STARTUP_FAILED) {
        size_t first = strcspn(reason, "\n");
        log_write(0, LOG_ERROR, "node %s: start failed: %.*s; stopping", n->cfg.name, (int)first,
                  reason);
        startup_error("skyjet: node %s: start failed: %.*s\n", n->cfg.name, (int)first, reason);
    }
    return st == STARTUP_FAILED;
}

/* RELOADING=1 now; READY=1 when clusterd has finished the reload (skyjet.reloaded), or at once
 * when there is no clusterd. */
static void on_reload(void)
{
    startup_notify("RELOADING=1");
    if (service_resolve(".clusterd")) {
        log_write(0, LOG_INFO, "SIGHUP: reloading the cluster file");
        notify_service(".clusterd", "reload");
    } else {
        log_write(0, LOG_INFO, "SIGHUP: no cluster service running; nothing to reload");
        startup_notify("READY=1");
    }
}

static void on_reopen(void)
{
    int rc = log_reopen();
    log_write(0, rc ? LOG_ERROR : LOG_INFO, "SIGUSR1: log file reopened%s%s", rc ? ": " : "",
              rc ? strerror(-rc) : "");
}

/* The signal loop. Returns the exit status: 1 when the start failed, else 0. */
static int node_run(struct node *n)
{
    sigset_t wanted;
    sigemptyset(&wanted);
    sigaddset(&wanted, SIGTERM);
    sigaddset(&wanted, SIGINT);
    sigaddset(&wanted, SIGHUP);
    sigaddset(&wanted, SIGUSR1);
    struct timespec tick = ms_span(TICK_MS);
    while (service_count() > 0) {
        int sig = sigtimedwait(&wanted, NULL, &tick);
        housekeeping();
        if (check_start(n)) {
            graceful_stop(FAILED_TIMEOUT_MS, &wanted);
            return 1;
        }
        if (sig == SIGTERM || sig == SIGINT) {
            startup_notify("STOPPING=1");
            log_write(0, LOG_INFO, "signal %s: stopping node %s (in-flight work may take %d ms)",
                      strsignal(sig), n->cfg.name, n->cfg.shutdown_timeout_ms);
            graceful_stop(n->cfg.shutdown_timeout_ms, &wanted);
            break;
        } else if (sig == SIGUSR1) {
            on_reopen();
        } else if (sig == SIGHUP) {
            on_reload();
        }
    }
    return 0;
}

/* Undo what node_start got to, in reverse. */
static void node_stop(struct node *n)
{
    if (n->runtime_started) {
        service_abort();
        wait_until(no_service_left, RETIRE_TIMEOUT_MS, STOP_POLL_MS);
        /* Let the workers drain and free the queues of released services before they stop. */
        wait_until(queues_freed, DRAIN_TIMEOUT_MS, STOP_POLL_MS);
        log_write(0, LOG_INFO, "node %s stopped", n->cfg.name);
        monitor_stop(); /* before the scheduler: it reads the workers' watches */
        scheduler_stop();
        socketdriver_init(NULL);
        reactor_destroy(reactor);
        reactor = NULL;
        clock_stop();
        host_shutdown();
        service_exit();
    }
    if (n->pidfile_written)
        unlink(n->cfg.pidfile);
    if (n->config_loaded)
        config_free(&n->cfg);
    env_exit();
    if (n->log_opened)
        log_close();
}

int main(int argc, char **argv)
{
    static struct node n;
    int status = parse_args(&n, argc, argv);
    if (status >= 0)
        return status;
    if (n.check_only) {
        status = load_config(&n) == 0 ? check_config(&n) : 1;
    } else {
        status = node_start(&n) == 0 ? node_run(&n) : 1;
    }
    node_stop(&n);
    return status;
}
