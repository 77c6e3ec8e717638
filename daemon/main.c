/* main: the skyjet process. Reads the command line and the INI file, wires the floors together
 * (log, services, clock, workers, monitor, Lua host), optionally daemonizes, launches the
 * logger and bootstrap services, then owns signals: the main thread waits in sigtimedwait while
 * every other thread has all signals blocked. It exits when no service is left (abort) or on
 * SIGTERM/SIGINT. */
#include "clock.h"
#include "config.h"
#include "env.h"
#include "handle.h"
#include "host.h"
#include "log.h"
#include "logger.h"
#include "monitor.h"
#include "reactor.h"
#include "socketdriver.h"
#include "mq.h"
#include "scheduler.h"
#include "service.h"

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
    "\n"
    "config keys:\n";

/* The folder holding lualib/ and service/: next to the binary (a build tree) or
 * <prefix>/share/skyjet (an installed tree). */
static int find_root(char *out, size_t n)
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
    (void)n;
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

static int pidfile_check(const char *path)
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

static int pidfile_write(const char *path)
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

/* While starting in the background, the write end of a pipe the launching process reads: it
 * exits 0 once the node is up ("ok") or 1 with the reason, so `skyjet -d` (and systemd
 * Type=forking) only report success for a node that really runs. */
static int ready_fd = -1;

static int daemonize(void)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0) {
        close(p[1]);
        char buf[1024];
        size_t used = 0;
        ssize_t n;
        while (used < sizeof buf - 1 && (n = read(p[0], buf + used, sizeof buf - 1 - used)) != 0) {
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

/* A start-up error: to stderr, or through the readiness pipe when daemonized. */
static void startup_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void startup_error(const char *fmt, ...)
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
    } else {
        fputs(buf, stderr);
    }
}

static void startup_done(void)
{
    if (ready_fd >= 0) {
        ssize_t w = write(ready_fd, "ok", 2);
        (void)w;
        close(ready_fd);
        ready_fd = -1;
    }
}

/* Give memory back to the system: after service churn has settled (at least 64 services released
 * since the last trim and no launch or release for a second: trimming during a spawn storm would
 * only make the next allocations fault the pages in again), and otherwise every 10 s. Large
 * buffers are kept in the heap between trims (see main: M_MMAP_THRESHOLD), which is what makes
 * big cluster messages fast. Called from the main loop every 100 ms. */
static void housekeeping(void)
{
    static uint64_t trimmed_at, last_launched, last_released, quiet_ticks, ticks;
    uint64_t launched = service_launched_total(), released = service_released_total();
    int quiet = launched == last_launched && released == last_released;
    quiet_ticks = quiet ? quiet_ticks + 1 : 0;
    last_launched = launched;
    last_released = released;
    if ((released - trimmed_at >= 64 && quiet_ticks >= 10) || ++ticks >= 100) {
        trimmed_at = released;
        ticks = 0;
        malloc_trim(0);
    }
}

/* Ask every service to go away and wait (bounded) until the queues are drained. */
static void stop_services(int timeout_ms)
{
    service_abort();
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        if (service_count() == 0 && mq_global_empty())
            break;
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
}

static void notify(const char *name, const char *text)
{
    uint32_t h = service_resolve(name);
    if (h) {
        char *copy = strdup(text);
        service_send(0, h, PTYPE_TEXT, 0, copy, strlen(text));
    }
}

/* SIGTERM: stop accepting and starting new work, let in-flight work finish for up to
 * timeout_ms (services that still owe answers hold the node: service_hold), then retire every
 * service (their sockets close, so peers see the links go) and return. A second SIGTERM/SIGINT
 * cuts the wait short. */
static void graceful_stop(int timeout_ms, sigset_t *signals)
{
    service_set_stopping();
    notify(".clusterd", "shutdown");
    notify(".launcher", "shutdown");
    struct timespec tick = {0, 10 * 1000000};
    int idle_ticks = 0;
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        int sig = sigtimedwait(signals, NULL, &tick);
        if (sig == SIGTERM || sig == SIGINT) {
            log_write(0, LOG_WARN, "second %s: stopping now", strsignal(sig));
            break;
        }
        /* settled: nothing held and no queue has work, for 50 ms in a row */
        idle_ticks = (service_holds() <= 0 && mq_global_empty()) ? idle_ticks + 1 : 0;
        if (idle_ticks >= 5)
            break;
        if (waited + 10 >= timeout_ms)
            log_write(0, LOG_WARN, "shutdown_timeout (%d ms) reached with work in flight",
                      timeout_ms);
    }
    stop_services(2000);
}

int main(int argc, char **argv)
{
    const char *config_path = NULL;
    int want_daemon = 0, check_only = 0;
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
        if (!strcmp(a, "-d"))
            want_daemon = 1;
        else if (!strcmp(a, "-t") || !strcmp(a, "--test"))
            check_only = 1;
        else if (a[0] == '-') {
            fprintf(stderr, "skyjet: unknown option %s (try --help)\n", a);
            return 2;
        } else if (!config_path)
            config_path = a;
        else {
            fprintf(stderr, "skyjet: one config file only (got %s and %s)\n", config_path, a);
            return 2;
        }
    }
    if (!config_path) {
        fprintf(stderr, "skyjet: no config file given\n%s", usage);
        return 2;
    }
    char root[PATH_MAX];
    if (find_root(root, sizeof root) != 0) {
        fprintf(stderr, "skyjet: cannot find lualib/skynet.lua next to the binary or in "
                        "../share/skyjet\n");
        return 1;
    }
    env_init();
    struct node_config cfg;
    char err[512];
    if (config_load(config_path, root, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "skyjet: %s\n", err);
        env_exit();
        return 1;
    }
    if (check_only) {
        printf("skyjet: %s is valid\n", cfg.path);
        config_free(&cfg);
        env_exit();
        return 0;
    }
    if (want_daemon && !cfg.pidfile) {
        fprintf(stderr, "skyjet: -d needs [node] daemon = PIDFILE in %s\n", cfg.path);
        config_free(&cfg);
        env_exit();
        return 1;
    }
    /* Every thread started from here inherits a full signal mask; only main takes signals (a
     * SIGTERM that arrives during start-up waits for the main loop instead of killing us). */
    sigset_t sigs;
    sigfillset(&sigs);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (cfg.pidfile) {
        int fail = pidfile_check(cfg.pidfile) != 0;
        if (!fail && daemonize() != 0) {
            fprintf(stderr, "skyjet: cannot daemonize: %s\n", strerror(errno));
            fail = 1;
        }
        if (!fail && pidfile_write(cfg.pidfile) != 0) {
            startup_error("skyjet: cannot write pidfile %s: %s\n", cfg.pidfile, strerror(errno));
            fail = 1;
        }
        if (fail) {
            config_free(&cfg);
            env_exit();
            return 1;
        }
    }
    if (cfg.logfile && log_open(cfg.logfile) != 0) {
        startup_error("skyjet: cannot open log file %s: %s\n", cfg.logfile, strerror(errno));
        if (cfg.pidfile)
            unlink(cfg.pidfile);
        config_free(&cfg);
        env_exit();
        return 1;
    }
    log_set_level((enum log_level)cfg.loglevel);
#if defined(__SANITIZE_ADDRESS__)
    env_set("skyjet_sanitizer", "address"); /* tests skip RSS measurements under ASan */
#endif

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

    struct service_hooks hooks = {scheduler_wakeup, service_retired, free_message_data};
    service_init(&hooks);
    service_register_module(&host_module);
    service_set_profile(cfg.profile);
    service_register_module(&logger_module);
    struct host_paths hp = {root, cfg.service_path, cfg.lib_path, cfg.cpath, cfg.preload, cfg.jit};
    host_configure(&hp);
    struct reactor_config rc = {.deliver = deliver_socket_event,
                                .high_water = cfg.socket_high_water,
                                .output_limit = cfg.socket_output_limit};
    reactor = reactor_create(&rc);
    if (!reactor || reactor_start(reactor) != 0) {
        log_write(0, LOG_ERROR, "cannot start the reactor");
        startup_error("skyjet: cannot start the reactor\n");
        return 1;
    }
    socketdriver_init(reactor);
    if (clock_start() != 0 || scheduler_start(cfg.threads) != 0 ||
        monitor_start(cfg.stuck_seconds) != 0) {
        log_write(0, LOG_ERROR, "cannot start the runtime threads");
        startup_error("skyjet: cannot start the runtime threads\n");
        return 1;
    }
    log_write(0, LOG_INFO, "skyjet %s node %s starting: %d threads, config %s", SKYJET_VERSION,
              cfg.name, cfg.threads, cfg.path);
    uint32_t logger = service_launch("logger", "");
    if (logger)
        handle_name(logger, "logger");
    int exit_code = 0;
    if (!service_launch(cfg.bootstrap, strchr(cfg.bootstrap, ' ') ? strchr(cfg.bootstrap, ' ') + 1
                                                                   : "")) {
        log_write(0, LOG_ERROR, "Bootstrap error : %s", cfg.bootstrap);
        startup_error("skyjet: Bootstrap error : %s\n", cfg.bootstrap);
        exit_code = 1;
        stop_services(1000);
    }

    if (exit_code == 0)
        startup_done();
    else if (ready_fd >= 0)
        close(ready_fd);

    sigset_t wanted;
    sigemptyset(&wanted);
    sigaddset(&wanted, SIGTERM);
    sigaddset(&wanted, SIGINT);
    sigaddset(&wanted, SIGHUP);
    sigaddset(&wanted, SIGUSR1);
    struct timespec tick = {0, 100 * 1000000};
    while (service_count() > 0) {
        int sig = sigtimedwait(&wanted, NULL, &tick);
        housekeeping();
        if (sig == SIGTERM || sig == SIGINT) {
            log_write(0, LOG_INFO, "signal %s: stopping node %s (in-flight work may take %d ms)",
                      strsignal(sig), cfg.name, cfg.shutdown_timeout_ms);
            graceful_stop(cfg.shutdown_timeout_ms, &wanted);
            break;
        } else if (sig == SIGUSR1) {
            int rc = log_reopen();
            log_write(0, rc ? LOG_ERROR : LOG_INFO, "SIGUSR1: log file reopened%s%s",
                      rc ? ": " : "", rc ? strerror(-rc) : "");
        } else if (sig == SIGHUP) {
            uint32_t clusterd = service_resolve(".clusterd");
            if (clusterd) {
                char *text = strdup("reload");
                service_send(0, clusterd, PTYPE_TEXT, 0, text, 6);
                log_write(0, LOG_INFO, "SIGHUP: reloading the cluster file");
            } else {
                log_write(0, LOG_INFO, "SIGHUP: no cluster service running; nothing to reload");
            }
        }
    }
    /* Let the workers drain and free the queues of released services before they stop. */
    for (int i = 0; i < 400 && (mq_live() > 0 || !mq_global_empty()); i++) {
        struct timespec ts = {0, 5 * 1000000};
        nanosleep(&ts, NULL);
    }
    log_write(0, LOG_INFO, "node %s stopped", cfg.name);
    scheduler_stop();
    socketdriver_init(NULL);
    reactor_destroy(reactor);
    reactor = NULL;
    monitor_stop();
    clock_stop();
    host_shutdown();
    service_exit();
    if (cfg.pidfile)
        unlink(cfg.pidfile);
    config_free(&cfg);
    env_exit();
    log_close();
    return exit_code;
}
