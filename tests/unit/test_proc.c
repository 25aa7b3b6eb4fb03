/* test_proc.c — child processes: spawn into a node's namespace with a log
 * file, no leaked descriptors, own process group, death with the parent;
 * signals, reaping, orderly stop; CPU and RSS sampling. Namespace tests need
 * root and skip otherwise. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chaos/ch_fs.h"
#include "chaos/ch_proc.h"
#include "chaos/ch_testbed.h"

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/rift-proc-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static char tb_prefix[16]; /* a testbed a failed assertion may have left */

static void teardown(void)
{
    ch_error err;
    if (tb_prefix[0])
        ch_testbed_remove(dir, tb_prefix, NULL, &err);
    ch_fs_remove_tree(dir);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Wait for the child to exit (it is expected to), at most 5 s. */
static int wait_exit(pid_t pid)
{
    int status = 0;
    for (int i = 0; i < 500; i++) {
        int rc = ch_proc_reap(pid, &status);
        cr_assert_geq(rc, 0, "reap: %s", strerror(-rc));
        if (rc == 1)
            return status;
        sleep_ms(10);
    }
    ch_proc_kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    cr_assert_fail("child %d did not exit", (int)pid);
    return -1;
}

static char *read_log(const char *path)
{
    char *text = NULL;
    size_t len;
    cr_assert_eq(ch_fs_read(path, 1 << 20, &text, &len), 0, "%s", path);
    return text;
}

static pid_t spawn(char *const argv[], const char *log)
{
    pid_t pid = 0;
    ch_error err = {{0}};
    int rc = ch_proc_spawn(NULL, argv, log, &pid, &err);
    cr_assert_eq(rc, 0, "%s", err.msg);
    cr_assert_gt(pid, 0);
    return pid;
}

TestSuite(proc, .init = setup, .fini = teardown, .timeout = 30);

Test(proc, runs_in_the_node_namespace_with_a_log)
{
    if (geteuid() != 0) {
        teardown(); /* criterion does not run .fini for a skipped test */
        cr_skip_test("needs root (network namespaces)");
    }
    const char *names[] = {"r1"}, *ips[] = {"198.18.0.1"};
    ch_error err = {{0}};
    ch_testbed *tb = ch_testbed_new(NULL, 1, names, ips, dir, &err);
    cr_assert_not_null(tb, "%s", err.msg);
    snprintf(tb_prefix, sizeof tb_prefix, "%s", ch_testbed_prefix(tb));
    char log[128];
    snprintf(log, sizeof log, "%s/r1.log", dir);
    char *argv[] = {"/bin/sh", "-c", "cat /proc/self/net/dev; echo to-stderr >&2", NULL};
    pid_t pid;
    int rc = ch_proc_spawn(ch_testbed_ns_path(tb, 0), argv, log, &pid, &err);
    cr_assert_eq(rc, 0, "%s", err.msg);
    int status = wait_exit(pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char *text = read_log(log);
    /* /proc/net/dev: two header lines, then exactly lo and the node's veth */
    int ifaces = 0;
    for (char *line = strchr(text, '\n'); line && line[1]; line = strchr(line + 1, '\n'))
        ifaces += strchr(line + 1, ':') && strchr(line + 1, ':') < strchr(line + 1, '\n');
    cr_assert(strstr(text, ch_testbed_iface(tb, 0)), "%s", text);
    cr_assert(strstr(text, "lo:"), "%s", text);
    cr_assert_eq(ifaces, 2, "only lo and the veth: %s", text);
    cr_assert(strstr(text, "to-stderr"), "stderr goes to the log too: %s", text);
    free(text);
    cr_assert_eq(ch_testbed_destroy(tb, &err), 0, "%s", err.msg);
}

Test(proc, reports_what_failed)
{
    char *missing[] = {"/nonexistent/rift-binary", NULL};
    pid_t pid = 0;
    ch_error err = {{0}};
    cr_assert_eq(ch_proc_spawn(NULL, missing, NULL, &pid, &err), -ENOENT);
    cr_assert(strstr(err.msg, "exec failed"), "%s", err.msg);
    cr_assert_eq(pid, 0);

    char *sh[] = {"/bin/true", NULL};
    cr_assert_eq(ch_proc_spawn("/run/netns/rf-no-such-ns", sh, NULL, &pid, &err), -ENOENT);
    cr_assert(strstr(err.msg, "/run/netns/rf-no-such-ns: cannot open network namespace"), "%s", err.msg);
    cr_assert_eq(ch_proc_spawn(NULL, sh, "/nonexistent/dir/log", &pid, &err), -ENOENT);
    cr_assert(strstr(err.msg, "/nonexistent/dir/log: cannot open log file"), "%s", err.msg);
    /* a file that is not a namespace: setns fails in the child */
    cr_assert_lt(ch_proc_spawn("/dev/null", sh, NULL, &pid, &err), 0);
    cr_assert(strstr(err.msg, "setns"), "%s", err.msg);
    cr_assert_eq(ch_proc_spawn(NULL, NULL, NULL, &pid, &err), -EINVAL);
}

Test(proc, clean_descriptors_stdin_and_process_group)
{
    /* a descriptor the parent forgot to mark close-on-exec */
    int leak = open("/dev/null", O_RDONLY);
    cr_assert_geq(leak, 0);
    cr_assert_eq(dup2(leak, 50), 50);
    char log[128];
    snprintf(log, sizeof log, "%s/fds.log", dir);
    char *argv[] = {"/bin/sh", "-c",
                    "if [ -e /proc/self/fd/50 ]; then echo leaked; else echo no-leak; fi; "
                    "if read x; then echo stdin-data; else echo stdin-eof; fi",
                    NULL};
    pid_t pid = spawn(argv, log);
    int status = wait_exit(pid);
    close(50);
    close(leak);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char *text = read_log(log);
    cr_assert(strstr(text, "no-leak") && strstr(text, "stdin-eof"), "%s", text);
    free(text);

    char *sleeper[] = {"/bin/sleep", "30", NULL};
    pid = spawn(sleeper, NULL);
    cr_assert_eq(getpgid(pid), pid, "the child leads its own process group");
    cr_assert_neq(getpgid(pid), getpgid(0));
    cr_assert_eq(ch_proc_reap(pid, &status), 0, "still running");
    cr_assert_eq(ch_proc_kill(pid, SIGKILL), 0);
    status = wait_exit(pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    cr_assert_eq(ch_proc_reap(pid, &status), -ECHILD, "reaped once");
    cr_assert_eq(ch_proc_kill(pid, SIGKILL), -ESRCH);
}

Test(proc, stop_is_term_then_kill)
{
    char *polite[] = {"/bin/sleep", "30", NULL};
    int status = 0;
    pid_t pid = spawn(polite, NULL);
    cr_assert_eq(ch_proc_stop(pid, 2000, &status), 0);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "status %x", status);

    /* a child that ignores SIGTERM gets SIGKILL after the grace period */
    char log[128];
    snprintf(log, sizeof log, "%s/stubborn.log", dir);
    char *stubborn[] = {"/bin/sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done", NULL};
    pid = spawn(stubborn, log);
    for (int i = 0; i < 200; i++) { /* wait until the trap is set */
        char *text = read_log(log);
        bool ready = strstr(text, "ready") != NULL;
        free(text);
        if (ready)
            break;
        sleep_ms(10);
    }
    cr_assert_eq(ch_proc_stop(pid, 200, &status), 0);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "status %x", status);
}

Test(proc, samples_cpu_rss_and_pause)
{
    char *busy[] = {"/bin/sh", "-c", "while :; do :; done", NULL};
    pid_t pid = spawn(busy, NULL);
    ch_proc_usage u = {0};
    double cpu = -1;
    uint64_t rss = 0;
    char state = 0;
    cr_assert_eq(ch_proc_sample(pid, &u, &cpu, &rss, &state), 0);
    sleep_ms(500);
    cr_assert_eq(ch_proc_sample(pid, &u, &cpu, &rss, &state), 0);
    /* a spinning shell on a shared 2-core machine: clearly busy, at most all cores */
    cr_assert(cpu > 5 && cpu <= 100.0 * (double)sysconf(_SC_NPROCESSORS_ONLN) + 5, "cpu %.1f%%", cpu);
    cr_assert(rss > 64 * 1024 && rss < (uint64_t)1 << 30, "rss %llu", (unsigned long long)rss);

    cr_assert_eq(ch_proc_kill(pid, SIGSTOP), 0);
    for (int i = 0; i < 100 && state != 'T'; i++) {
        sleep_ms(5);
        cr_assert_eq(ch_proc_sample(pid, &u, NULL, NULL, &state), 0);
    }
    cr_assert_eq(state, 'T', "paused");
    sleep_ms(300);
    cr_assert_eq(ch_proc_sample(pid, &u, &cpu, NULL, &state), 0);
    cr_assert(cpu < 4, "a paused process uses no CPU: %.1f%%", cpu);
    cr_assert_eq(ch_proc_kill(pid, SIGCONT), 0);
    cr_assert_eq(ch_proc_kill(pid, SIGKILL), 0);
    int status = wait_exit(pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    cr_assert_eq(ch_proc_sample(pid, &u, &cpu, &rss, &state), -ESRCH);

    uint64_t start = 0;
    cr_assert_eq(ch_proc_start_ticks(getpid(), &start), 0);
    cr_assert_gt(start, 0);
}

Test(proc, children_die_with_the_controller)
{
    /* Orphans come to us instead of init, so we can see how they ended. */
    cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t controller = fork();
    cr_assert_geq(controller, 0);
    if (controller == 0) {
        char *argv[] = {"/bin/sleep", "30", NULL};
        pid_t child = -1;
        ch_error err;
        ch_proc_spawn(NULL, argv, NULL, &child, &err);
        if (write(p[1], &child, sizeof child) != sizeof child)
            _exit(1);
        _exit(0); /* the "controller" dies without stopping its child */
    }
    pid_t child = -1;
    cr_assert_eq(read(p[0], &child, sizeof child), (ssize_t)sizeof child);
    close(p[0]);
    close(p[1]);
    cr_assert_gt(child, 0);
    cr_assert_eq(waitpid(controller, NULL, 0), controller);
    int status = wait_exit(child);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "status %x", status);
}
