// The stats region's file: /dev/shm/uaio.PID (see uaio_shm.h).
#define _GNU_SOURCE
#include "uaio_shm.h"

#include <dirent.h>
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

/* Regions of processes that are gone (children that left by _exit, crashes), removed when a
 * new one is made: /dev/shm is sticky, so only our user's go. */
static void remove_dead_regions(void) {
    DIR *d = opendir("/dev/shm");
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        if (strncmp(e->d_name, "uaio.", 5) != 0) continue;
        long pid = strtol(e->d_name + 5, &end, 10);
        if (*end || pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

void *uaio_shm_create(int pid, uint64_t size) {
    char path[64];
    region_path(path, sizeof path, pid);
    remove_dead_regions();
    unlink(path); /* a dead process's region with our pid, or our own before an exec */
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
    static int registered;
    if (!registered) registered = atexit(remove_region) == 0;
    snprintf(owned_path, sizeof owned_path, "%s", path);
    owner_pid = pid;
    return p;
}

void *uaio_shm_open(int pid, uint64_t *size) {
    char path[64];
    region_path(path, sizeof path, pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return NULL;
    struct stat st;
    int bad = fstat(fd, &st) != 0 ? errno : (uint64_t)st.st_size < sizeof(struct uaio_shm_header) ? EPROTO : 0;
    if (bad) {
        close(fd);
        errno = bad;
        return NULL;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) {
        errno = e;
        return NULL;
    }
    *size = (uint64_t)st.st_size;
    return p;
}
