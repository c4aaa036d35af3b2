/* A stats region with crafted values (any process of the user can write one): `uaio` must
 * report on it, never trap. Publishes /dev/shm/uaio.PID as libuaio would, with one field set
 * to an extreme value (MODE), runs `UAIO SUBCOMMAND --json PID` on it, and exits 0 if uaio
 * exited (whatever its status), 1 if a signal killed it or it ran for 10 s. Mode `mtime-past`:
 * an unmapped file of that name whose mtime is the earliest there is, and `UAIO SUBCOMMAND
 * --json` (for ps). Modes that must not be taken for this process's region, where uaio must
 * exit 3 ("no state"): `fifo` (a FIFO by that name), `owner` (a region owned by another user:
 * root only, else exit 77), `pid` (a region naming another pid). Mode `escape`: a command name
 * and a file name (of a request in flight) made of terminal escape sequences, which uaio's text
 * output (no --json) must show escaped.
 * Usage: crafted UAIO MODE SUBCOMMAND */
#define _GNU_SOURCE
#include "uaio_shm.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: crafted UAIO MODE SUBCOMMAND\n");
        return 2;
    }
    const char *uaio = argv[1], *mode = argv[2], *sub = argv[3];
    int pid = getpid();
    char path[64];
    snprintf(path, sizeof path, "/dev/shm/uaio.%d", pid);
    size_t hs = (sizeof(struct uaio_shm_header) + 63) & ~(size_t)63, size = hs + sizeof(struct uaio_shm_request);
    int fifo = !strcmp(mode, "fifo"), refused = fifo || !strcmp(mode, "owner") || !strcmp(mode, "pid");
    int text = !strcmp(mode, "escape"), unmapped = !strcmp(mode, "mtime-past");
    if (!strcmp(mode, "owner") && geteuid() != 0) return 77;
    unlink(path);
    if (fifo) {
        if (mkfifo(path, 0600) != 0) return 2;
        goto run;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (unmapped) {
        struct timespec ts[2] = {{INT64_MIN, 0}, {INT64_MIN, 0}};
        if (fd < 0 || futimens(fd, ts) != 0) return 2;
        close(fd);
    }
    if (unmapped) goto run;
    if (fd < 0 || ftruncate(fd, (off_t)size) != 0) return 2;
    char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) return 2;
    struct uaio_shm_header *h = (void *)p;
    struct uaio_shm_request *r = (void *)(p + hs);
    h->version = UAIO_SHM_VERSION;
    h->header_size = (uint32_t)hs;
    h->pid = pid;
    h->request_capacity = 1;
    h->started_ns = now_ns();
    strcpy(h->command, "crafted");
    if (!strcmp(mode, "counters-sum")) h->counters[0][0].completed = UINT64_MAX, h->counters[0][0].failed = 1;
    else if (!strcmp(mode, "counter-int64")) h->counters[0][0].completed = 1ull << 63;
    else if (!strcmp(mode, "rejected")) h->rejected = 1ull << 63;
    else if (!strcmp(mode, "latency-sum")) h->latency[0][0] = UINT64_MAX, h->latency[0][1] = 1;
    else if (!strcmp(mode, "latency-bucket")) h->latency[0][248] = 1;
    else if (!strcmp(mode, "started-future")) h->started_ns = now_ns() + 1000000000000ull;
    else if (!strcmp(mode, "owner")) { if (fchown(fd, 65534, 65534) != 0) return 2; }
    else if (!strcmp(mode, "pid")) h->pid = pid + 1;
    else if (!strcmp(mode, "escape")) {
        /* The command, and the name of a file a request in flight reads. */
        strcpy(h->command, "x\033]2;owned\007\033[2J\302\233y");
        const char *name = "/tmp/uaio-crafted-\033]2;owned\007";
        int f = open(name, O_RDWR | O_CREAT, 0600);
        if (f < 0) return 2;
        unlink(name);
        r->state = 3, r->fd = f, r->submitted_ns = now_ns();
        h->in_flight = 1;
    }
    else if (!strcmp(mode, "submitted-future")) {
        r->state = 3, r->submitted_ns = now_ns() + 10000000000ull;
        h->in_flight = 1;
    } else if (!strcmp(mode, "nbytes")) {
        r->state = 3, r->nbytes = UINT64_MAX, r->submitted_ns = now_ns();
        h->in_flight = 1;
    } else {
        fprintf(stderr, "crafted: unknown mode %s\n", mode);
        return 2;
    }
    h->magic = UAIO_SHM_MAGIC;
run:;
    int out[2];
    if (pipe(out) != 0) return 2;
    pid_t c = fork();
    if (c == 0) {
        char s[16];
        snprintf(s, sizeof s, "%d", pid);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(out[1], 1);
        dup2(devnull, 2);
        alarm(10); /* kept across exec: a uaio that hangs is killed by SIGALRM */
        if (unmapped) execl(uaio, "uaio", sub, "--json", (char *)0);
        else if (text && !strcmp(sub, "ps")) execl(uaio, "uaio", sub, (char *)0);
        else if (text) execl(uaio, "uaio", sub, s, (char *)0);
        else execl(uaio, "uaio", sub, "--json", s, (char *)0);
        _exit(127);
    }
    close(out[1]);
    char buf[65536];
    size_t got = 0;
    ssize_t n;
    while ((n = read(out[0], buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)n;
    int st = 0;
    waitpid(c, &st, 0);
    unlink(path);
    if (WIFSIGNALED(st)) {
        printf("uaio %s on a region with %s: killed by signal %d%s\n", sub, mode, WTERMSIG(st),
               WTERMSIG(st) == SIGALRM ? " (it ran for 10 s)" : "");
        return 1;
    }
    if (refused && WEXITSTATUS(st) != 3) {
        printf("uaio %s on a region with %s: exit %d, expected 3 (not this process's region)\n", sub, mode,
               WEXITSTATUS(st));
        return 1;
    }
    if (text && (memchr(buf, 033, got) || memchr(buf, 007, got) || memmem(buf, got, "\302\233", 2))) {
        printf("uaio %s: a control character of the command name reached the output\n", sub);
        return 1;
    }
    if (text && !memmem(buf, got, "\\x1b]2;owned", 11)) {
        printf("uaio %s: the command name is not in the output, escaped\n", sub);
        return 1;
    }
    return 0;
}
