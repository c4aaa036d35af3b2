// The stats region a process using libuaio publishes in /dev/shm/uaio.PID (mode 0600), for the
// `uaio` command: a fixed header, then one record per request slot. Written by the library with
// relaxed atomics (counters, gauges) and a per-record sequence lock (requests); read by `uaio`
// from another process. The layout is versioned: a reader that does not know `version` says so.
#ifndef UAIO_SHM_H
#define UAIO_SHM_H

#include <stdint.h>

#define UAIO_SHM_MAGIC 0x314d48534f494155ULL /* "UAIOSHM1" */
#define UAIO_SHM_VERSION 2u

enum {
    UAIO_SHM_OPS = 32,      /* by Opcode raw value: read, write, fsync, fdatasync, readv, writev, then
                               uaio_ops.h's in enum uaio_op order (31 in version 2) */
    UAIO_SHM_BACKENDS = 3,  /* pool, uring (BackendKind raw values), inline */
    UAIO_SHM_BUCKETS = 256, /* latency: log-linear, 4 per power of two (uaio_shm_bucket) */
    UAIO_SHM_CLASSES = 2,   /* bounded, unbounded */
};

struct uaio_shm_counters {
    uint64_t completed, cancelled, failed, bytes;
};

struct uaio_shm_request {
    uint32_t seq; /* odd while the library writes the record */
    uint8_t state; /* 0 free, 1 held, 2 queued, 3 running (RequestState) */
    uint8_t backend;
    uint8_t opcode;
    uint8_t cancel; /* CancelState */
    int32_t fd;
    int32_t worker_tid; /* pool, while running */
    int64_t offset;
    uint64_t nbytes;
    uint64_t submitted_ns; /* CLOCK_MONOTONIC */
    uint32_t generation;
    uint8_t work_class; /* 0 bounded, 1 unbounded (WorkClass) */
    uint8_t reserved[3];
};

struct uaio_shm_header {
    uint64_t magic;
    uint32_t version;
    uint32_t header_size; /* offset of requests[] */
    int32_t pid;
    uint32_t request_capacity; /* records that follow (the first slots; at most 4096) */
    uint64_t started_ns; /* CLOCK_MONOTONIC when the engine was built */
    char command[64];
    uint32_t ring; /* 1 if the ring is in use */
    uint32_t ring_entries;
    int32_t cancel_signal;
    uint32_t in_flight; /* requests in the table */
    uint32_t ring_in_flight;
    uint32_t workers_total[UAIO_SHM_CLASSES], workers_idle[UAIO_SHM_CLASSES],
        workers_blocked[UAIO_SHM_CLASSES], workers_limit[UAIO_SHM_CLASSES],
        queued[UAIO_SHM_CLASSES] /* unused: readers count the queued records */;
    int32_t ring_fd; /* the ring's fd: its SQ/CQ occupancy is in /proc/PID/fdinfo/ring_fd */
    /* The inode of the publisher's pid namespace (/proc/self/ns/pid; 0: unknown). /dev/shm may
     * be shared by containers whose pids mean different processes: a pid is judged (alive,
     * dead, the region's process) only in the namespace that gave it. */
    uint64_t pid_ns;
    uint64_t unused[UAIO_SHM_OPS - 1]; /* submissions are not counted: completions + requests in flight */
    uint64_t rejected; /* failed at submission */
    struct uaio_shm_counters counters[UAIO_SHM_OPS][UAIO_SHM_BACKENDS];
    uint64_t latency[UAIO_SHM_BACKENDS][UAIO_SHM_BUCKETS]; /* inline: 1 in 16 sampled, counted 16 times */
    /* struct uaio_shm_request requests[request_capacity] at header_size */
};

/* The latency bucket of `ns`: 4 buckets per power of two. */
static inline uint32_t uaio_shm_bucket(uint64_t ns) {
    if (ns < 4) return (uint32_t)ns;
    uint32_t e = 63u - (uint32_t)__builtin_clzll(ns); /* >= 2 */
    return 4u * (e - 1u) + (uint32_t)((ns >> (e - 2u)) & 3u);
}

/* The smallest value of bucket `b`. */
static inline uint64_t uaio_shm_bucket_floor(uint32_t b) {
    if (b < 4) return b;
    uint32_t e = b / 4u + 1u;
    return (uint64_t)(4u + b % 4u) << (e - 2u);
}

static inline struct uaio_shm_request *uaio_shm_requests(struct uaio_shm_header *h) {
    return (struct uaio_shm_request *)((char *)h + h->header_size);
}

/* The writer's half of a record's sequence lock (the engine lock serialises writers). */
static inline void uaio_shm_write_begin(struct uaio_shm_request *r) {
    __atomic_store_n(&r->seq, r->seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}
static inline void uaio_shm_write_end(struct uaio_shm_request *r) {
    __atomic_store_n(&r->seq, r->seq + 1, __ATOMIC_RELEASE);
}

/* The reader's: copies record `r` into `out`; 0 if it was being written (try again). */
static inline int uaio_shm_read(const struct uaio_shm_request *r, struct uaio_shm_request *out) {
    uint32_t a = __atomic_load_n(&r->seq, __ATOMIC_ACQUIRE);
    if (a & 1) return 0;
    __builtin_memcpy(out, (const void *)r, sizeof *out);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return __atomic_load_n(&r->seq, __ATOMIC_RELAXED) == a;
}

static inline void uaio_shm_add(uint64_t *p, uint64_t v) { __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }

/* 1 in `1 << shift` calls on this thread returns 1: for sampling the busiest counters. */
static inline int uaio_shm_sample(unsigned shift) {
    static __thread unsigned n __attribute__((tls_model("initial-exec")));  /* no allocation, signal-safe */
    return (++n & ((1u << shift) - 1u)) == 0;
}
static inline void uaio_shm_store32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static inline uint64_t uaio_shm_load64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline uint32_t uaio_shm_load32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }

/* This process's pid namespace (the inode of /proc/self/ns/pid), 0 if unknown. */
uint64_t uaio_shm_pid_ns(void);
/* 1 if /dev/shm/uaio.PID names another pid namespace than this process's: its pid is not
 * this namespace's to judge. */
int uaio_shm_foreign(int pid);
/* Creates /dev/shm/uaio.PID (0600, replacing a stale one of this pid namespace; EEXIST if one
 * of another namespace is there) of `size` bytes, maps it shared and writes its `pid_ns`.
 * NULL with errno on failure. */
void *uaio_shm_create(int pid, uint64_t size);
/* A private copy of process `pid`'s region (a region is another process's memory: a mapping
 * that its owner truncates would SIGBUS the reader). Only a regular file of a region's size
 * qualifies (EPROTO otherwise); `size` gets the bytes read, `owner` the file's uid, `fd` the
 * open file, for `uaio_shm_read_record`. Free the copy with free(), close the fd. NULL with errno. */
void *uaio_shm_snapshot(int pid, uint64_t *size, uint32_t *owner, int *fd);
/* Reads the record at `offset` of the region's file as `uaio_shm_read` reads one in memory;
 * 1 if a consistent copy came, 0 if none did (gone, or always being written). */
int uaio_shm_read_record(int fd, uint64_t offset, struct uaio_shm_request *out);

#endif
