/* A stats region with crafted values (any process of the user can write one): `uaio` must
 * report on it, never trap. Publishes /dev/shm/uaio.PID as libuaio would, with one field set
 * to an extreme value (MODE), runs `UAIO SUBCOMMAND --json PID` on it, and exits 0 if uaio
 * exited (whatever its status), 1 if a signal killed it. Mode `mtime-past`: an unmapped file
 * of that name whose mtime is the earliest there is, and `UAIO SUBCOMMAND --json` (for ps).
 * Usage: crafted UAIO MODE SUBCOMMAND */
#include "uaio_shm.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
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
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    int unmapped = !strcmp(mode, "mtime-past");
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
    pid_t c = fork();
    if (c == 0) {
        char s[16];
        snprintf(s, sizeof s, "%d", pid);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        if (unmapped) execl(uaio, "uaio", sub, "--json", (char *)0);
        else execl(uaio, "uaio", sub, "--json", s, (char *)0);
        _exit(127);
    }
    int st = 0;
    waitpid(c, &st, 0);
    unlink(path);
    if (WIFSIGNALED(st)) {
        printf("uaio %s on a region with %s: killed by signal %d\n", sub, mode, WTERMSIG(st));
        return 1;
    }
    return 0;
}
