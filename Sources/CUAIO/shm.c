// The stats region's file: /dev/shm/uaio.PID (see uaio_shm.h).
#define _GNU_SOURCE
#include "uaio_shm.h"

#include <dirent.h>
#include <stddef.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static void region_path(char *buf, size_t n, int pid) { snprintf(buf, n, "/dev/shm/uaio.%d", pid); }

/* The region this process image created, removed at exit (not by a forked child that never
 * made its own: it would remove its parent's). A crash leaves it to `uaio ps` to clean up. */
static char owned_path[64];
static int owner_pid;

static void remove_region(void) {
    if (owner_pid == getpid()) unlink(owned_path);
}

uint64_t uaio_shm_pid_ns(void) {
    struct stat st;
    return stat("/proc/self/ns/pid", &st) == 0 ? (uint64_t)st.st_ino : 0;
}

/* The pid namespace a region's header names: 0 (unknown, or not a region we can read) when it
 * cannot be read. */
static uint64_t region_pid_ns(int dir, const char *name) {
    int fd = openat(dir, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) return 0;
    uint64_t ns = 0;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        pread(fd, &ns, sizeof ns, offsetof(struct uaio_shm_header, pid_ns)) != (ssize_t)sizeof ns)
        ns = 0;
    close(fd);
    return ns;
}

/* Whether the region `name` in `dir` was published in another pid namespace than `ours`:
 * its pid is not ours to judge (a live process of another container may have it). */
static int foreign(int dir, const char *name, uint64_t ours) {
    uint64_t theirs = region_pid_ns(dir, name);
    return ours != 0 && theirs != 0 && theirs != ours;
}

int uaio_shm_foreign(int pid) {
    char path[64];
    region_path(path, sizeof path, pid);
    return foreign(AT_FDCWD, path, uaio_shm_pid_ns());
}

/* Regions of processes that are gone (children that left by _exit, crashes), removed when a
 * new one is made: /dev/shm is sticky, so only our user's go, and only of our pid namespace. */
static void remove_dead_regions(uint64_t ns) {
    DIR *d = opendir("/dev/shm");
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        if (strncmp(e->d_name, "uaio.", 5) != 0) continue;
        long pid = strtol(e->d_name + 5, &end, 10);
        if (*end || pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        if (foreign(dirfd(d), e->d_name, ns)) continue;
        unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

void *uaio_shm_create(int pid, uint64_t size) {
    char path[64];
    region_path(path, sizeof path, pid);
    uint64_t ns = uaio_shm_pid_ns();
    remove_dead_regions(ns);
    /* A dead process's region with our pid, or our own before an exec; never another pid
     * namespace's, whose process may be alive: then no region for this one (EEXIST). */
    if (foreign(AT_FDCWD, path, ns)) {
        errno = EEXIST;
        return NULL;
    }
    unlink(path);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return NULL;
    /* Every page allocated now: touching one that a full tmpfs cannot give later is SIGBUS. */
    if (fchmod(fd, 0600) != 0 || (errno = posix_fallocate(fd, 0, (off_t)size)) != 0) {
        int e = errno;
        close(fd);
        unlink(path);
        errno = e;
        return NULL;
    }
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) {
        unlink(path);
        errno = e;
        return NULL;
    }
    madvise(p, size, MADV_DONTFORK); /* a forked child publishes its own region */
    ((struct uaio_shm_header *)p)->pid_ns = ns;
    static int registered;
    if (!registered) registered = atexit(remove_region) == 0;
    snprintf(owned_path, sizeof owned_path, "%s", path);
    owner_pid = pid;
    return p;
}

/* Larger than any region the library makes (a header and 4096 records): a bigger file is no region. */
#define UAIO_SHM_MAX_SIZE (1u << 24)

void *uaio_shm_snapshot(int pid, uint64_t *size, uint32_t *owner, int *fd_out) {
    char path[64];
    region_path(path, sizeof path, pid);
    /* O_NONBLOCK: a FIFO (anybody may make one by that name) must not hang the reader. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) return NULL;
    struct stat st;
    int bad = fstat(fd, &st) != 0 ? errno
        : !S_ISREG(st.st_mode) || st.st_size < (off_t)sizeof(struct uaio_shm_header)
            || st.st_size > (off_t)UAIO_SHM_MAX_SIZE ? EPROTO : 0;
    char *p = bad ? NULL : malloc((size_t)st.st_size);
    if (!bad && !p) bad = ENOMEM;
    size_t got = 0;
    while (!bad && got < (size_t)st.st_size) {
        ssize_t n = pread(fd, p + got, (size_t)st.st_size - got, (off_t)got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break; /* truncated meanwhile: what was read */
        got += (size_t)n;
    }
    if (!bad && got < sizeof(struct uaio_shm_header)) bad = EPROTO;
    if (bad) {
        free(p);
        close(fd);
        errno = bad;
        return NULL;
    }
    *size = got;
    *owner = st.st_uid;
    *fd_out = fd;
    return p;
}

static int pread_all(int fd, void *buf, size_t n, uint64_t offset) {
    ssize_t r;
    do r = pread(fd, buf, n, (off_t)offset);
    while (r < 0 && errno == EINTR);
    return r == (ssize_t)n;
}

int uaio_shm_read_record(int fd, uint64_t offset, struct uaio_shm_request *out) {
    /* The sequence lock, through the file: the sequence, the record, the sequence again. */
    for (int tries = 0; tries < 1000; tries++) {
        uint32_t a, b;
        if (!pread_all(fd, &a, sizeof a, offset) || !pread_all(fd, out, sizeof *out, offset)) return 0;
        if (a & 1 || out->seq != a || !pread_all(fd, &b, sizeof b, offset)) continue;
        if (b == a) return 1;
    }
    return 0;
}
