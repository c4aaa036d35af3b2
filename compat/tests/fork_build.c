/* fork() while other threads build the engine (their first AIO calls): the child must not
 * inherit the build's lock held. Each round is a fresh process whose two other threads make
 * their first AIO calls at once (the second may take the build's lock as soon as the first
 * is past its own start) while the main thread forks a little later; the grandchild then makes
 * its own AIO call, with an alarm as the judge of a hang. */
#include "helpers.h"
#include <sys/wait.h>

enum { ROUNDS = 80 };
static int fd;

static void *first_call(void *arg) {
    (void)arg;
    static char buf[64];
    struct aiocb cb;
    t_prep(&cb, fd, buf, sizeof buf);
    CHECK(aio_read(&cb) == 0, "aio_read");
    CHECK(t_wait(&cb, 5000) == sizeof buf, "read");
    return NULL;
}

static int in_child(void) {
    alarm(getenv("FORK_BUILD_ALARM") ? atoi(getenv("FORK_BUILD_ALARM")) : 5);
    static char buf[64];
    struct aiocb cb;
    t_prep(&cb, fd, buf, sizeof buf);
    CHECK(aio_read(&cb) == 0, "child aio_read");
    CHECK(t_wait(&cb, 4000) == sizeof buf, "child read");
    return 0;
}

static int round_process(int round) {
    pthread_t t, u;
    CHECK(pthread_create(&t, NULL, first_call, NULL) == 0 && pthread_create(&u, NULL, first_call, NULL) == 0,
          "pthread_create");
    /* 0 to about 0.1 ms: the threads start and race to the build, which takes a few hundred. */
    for (volatile int spin = 0; spin < round * 300; spin++) {}
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) _exit(in_child());
    int status;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    pthread_join(t, NULL);
    pthread_join(u, NULL);
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) return 2;  // hung
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

int main(void) {
    fd = t_temp_file(4096);
    int hung = 0, failed = 0;
    for (int i = 0; i < ROUNDS; i++) {
        pid_t pid = fork();
        CHECK(pid >= 0, "fork");
        if (pid == 0) _exit(round_process(i));
        int status;
        CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
        int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
        hung += rc == 2;
        failed += rc == 1;
    }
    CHECK(hung == 0 && failed == 0, "%d of %d children hung in their first AIO call, %d failed", hung, ROUNDS,
          failed);
    static char buf[64];
    struct aiocb cb;
    t_prep(&cb, fd, buf, sizeof buf);
    CHECK(aio_read(&cb) == 0 && t_wait(&cb, 5000) == sizeof buf, "read");
    t_require_uaio(1);
    return T_EXIT_PASS;
}
