/*
 * powercut.so: simulated power cuts for tests, as an LD_PRELOAD shim.
 *
 * A process started with LD_PRELOAD=powercut.so and CASK_POWERCUT_ROOT=DIR runs normally, but
 * the shim watches every call that changes a file or directory under DIR (the JVM's FileChannel
 * and java.nio.file calls and SQLite's native VFS both go through these libc functions), keeps
 * a model of what the disk would hold after a power cut, and writes that state out as a
 * directory tree (a "reboot image") at chosen points. Tests then open the image as the store
 * the machine would find after the cut.
 *
 * What is durable when (the rules of the model; POSIX promises no more, ext4/xfs often give more):
 *  - A file's bytes and size: as of the last fsync() or fdatasync() of that file (any fd of it).
 *    Writes, ftruncate and fallocate since then are lost. With CASK_POWERCUT_TORN=1 they are
 *    not simply lost: each 4 KiB page written since the last sync comes back old, new, or mixed
 *    512-byte sector by sector (what a real write-back cut short leaves), and a size changed
 *    since the last sync is the old or the new one.
 *  - A directory entry (a file or directory created, renamed in or out, linked, unlinked): as
 *    of the last fsync() of that directory. A new file whose directory was synced but which was
 *    never synced itself comes back empty; a directory never synced comes back as it was at its
 *    last sync (a new one: empty). Renames are atomic per directory, and a rename across two
 *    directories is durable in each as of that directory's sync.
 *  - Everything under DIR when the process started is durable (the image of a previous cut, or
 *    a store a test prepared).
 *  - Writes through shared writable mappings are not seen: only SQLite's -shm files use them,
 *    and their content is rebuilt after a crash. Any other unsupported change under DIR
 *    (truncate() by name, renameat2 flags, a shared writable mapping of another file) aborts the
 *    process with a message, so a test cannot pass by not looking.
 *
 * A crash point is the moment before an operation that changes state under DIR: a write,
 * pwrite, writev, ftruncate, fallocate, fsync/fdatasync, open with O_CREAT or O_TRUNC, rename,
 * link, unlink, mkdir or rmdir. Operations are numbered 1, 2, ... in the order they take the
 * shim's lock (one global lock: operations on watched files run one at a time). Point n is the
 * state after operations 1..n-1, before n. At a point the shim writes the image and lets the
 * process go on (the image is exactly what a cut there would leave: nothing after it can change
 * it), so one run yields many points; CASK_POWERCUT_EXIT_AT makes one point a real death.
 * The model does not call the real fsync at all: it alone decides what survives, and the
 * tests run faster for it. Paths are matched as spelled, so ROOT and the paths the process uses
 * must be free of symlinks (tests pass realpaths).
 *
 * Environment:
 *   CASK_POWERCUT_ROOT   the directory to watch (absolute, no symlinks); unset: the shim does nothing
 *   CASK_POWERCUT_OUT    where the shim keeps its model (OUT/.durable) and writes images (OUT/<n>)
 *                        and OUT/points (one line per image: "n category op path") and, at exit,
 *                        OUT/ops (the number of operations, in all and per category)
 *   CASK_POWERCUT_SEED   seeds the choice of points and of torn pages (decimal u64)
 *   CASK_POWERCUT_RATES  "PREFIX=P,PREFIX=P,...": an operation on a path (relative to ROOT)
 *                        starting with PREFIX is a point with probability P (first match wins;
 *                        "*" matches everything). E.g. "journals/=0.2,index.db=1,*=0"
 *   CASK_POWERCUT_PICK   "CATEGORY=i,j,...;CATEGORY=...": also a point at the i-th, j-th... operation on
 *                        files of that category (journal: journals/..., pack: packs/..., index:
 *                        index.db*, catalog: catalog.db*, other). With OUT/ops of an earlier run
 *                        ("total=N journal=N pack=N ..."), a test picks exactly as many points per
 *                        category as it wants. The category "op" picks by operation number (all
 *                        categories counted: point n is the state before operation n), for points
 *                        in a phase whose operation numbers an earlier run reported (OUT/log)
 *   CASK_POWERCUT_MAX    at most this many images (default 1000)
 *   CASK_POWERCUT_EXIT_AT  at operation n, write image n and _exit(86): a real crash
 *   CASK_POWERCUT_FINAL  1: at exit, write image "final" (the cut just after the process ended)
 *   CASK_POWERCUT_TORN   1: unsynced writes come back old, new or mixed (see above)
 *   CASK_POWERCUT_LOG    1: append every operation to OUT/log, one line "n category op path" (a run
 *                        that counts, so that a second run can pick points by operation number)
 * The process may read the operation count through powercut_ops() (e.g. Java's FFM after
 * System.load of this library), to say which operations came before an acknowledgement.
 *
 * The model: every file or directory under DIR has an id. OUT/.durable/ID holds a regular
 * file's durable bytes; a page bitmap marks the pages written since (copied over at its next
 * sync); a directory keeps its durable entry list (name -> id), replaced by the real listing at
 * each fsync of the directory. An id is bound to an inode until its last link goes; a reused
 * inode number gets a new id. Images are built from the root's durable entry list down.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define PAGE 4096
#define SECTOR 512
#define MAXFD 65536

struct ent { char *name; int id; };

struct node {
    dev_t dev;
    ino_t ino;
    int alive;      /* still bound to its inode */
    int dir;
    int rfd;        /* read-only fd of the live file (regular files), for syncs and torn pages */
    off_t durable_size;
    unsigned char *dirty; /* one byte per page written since the last sync */
    size_t dirty_pages;
    struct ent *ents;     /* directories: durable entries */
    int nents;
};

static int enabled;
static char root[PATH_MAX];
static size_t rootlen;
static char out[PATH_MAX];
static char durable[PATH_MAX];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static unsigned long long ops;
static uint64_t rng;
static uint64_t torn_rng;
static int torn;
static int final_image;
static int oplog = -1; /* OUT/log when CASK_POWERCUT_LOG=1 */
static long images_left = 1000;
static unsigned long long exit_at;
static struct node *nodes;
static int nnodes, capnodes;
static int fdid[MAXFD]; /* id + 1, 0: not watched */
struct rate { char prefix[128]; double p; };
static struct rate rates[32];
static int nrates;
/* Categories of watched paths, and per category: operations seen, and the ordinals picked as points. */
static const char *categories[] = {"journal", "pack", "index", "catalog", "other"};
#define NCAT 5
static unsigned long long catops[NCAT];
static unsigned long long *picks[NCAT];
static int npicks[NCAT];
/* Operation numbers picked as points (CASK_POWERCUT_PICK "op=..."). */
static unsigned long long *oppicks;
static int noppicks;

static int (*r_open)(const char *, int, ...);
static int (*r_openat)(int, const char *, int, ...);
static ssize_t (*r_write)(int, const void *, size_t);
static ssize_t (*r_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*r_writev)(int, const struct iovec *, int);
static ssize_t (*r_pwritev)(int, const struct iovec *, int, off_t);
static ssize_t (*r_pwritev2)(int, const struct iovec *, int, off_t, int);
static int (*r_ftruncate)(int, off_t);
static int (*r_fallocate)(int, int, off_t, off_t);
static int (*r_posix_fallocate)(int, off_t, off_t);
static int (*r_fsync)(int);
static int (*r_fdatasync)(int);
static int (*r_rename)(const char *, const char *);
static int (*r_renameat)(int, const char *, int, const char *);
static int (*r_renameat2)(int, const char *, int, const char *, unsigned);
static int (*r_unlink)(const char *);
static int (*r_unlinkat)(int, const char *, int);
static int (*r_rmdir)(const char *);
static int (*r_mkdir)(const char *, mode_t);
static int (*r_mkdirat)(int, const char *, mode_t);
static int (*r_link)(const char *, const char *);
static int (*r_linkat)(int, const char *, int, const char *, int);
static int (*r_close)(int);
static int (*r_dup)(int);
static int (*r_dup2)(int, int);
static int (*r_dup3)(int, int, int);
static int (*r_truncate)(const char *, off_t);
static void *(*r_mmap)(void *, size_t, int, int, int, off_t);
static ssize_t (*r_copy_file_range)(int, off_t *, int, off_t *, size_t, unsigned);
static ssize_t (*r_sendfile)(int, int, off_t *, size_t);

static void die(const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > (int) sizeof buf - 2) n = sizeof buf - 2;
    buf[n++] = '\n';
    if (r_write) r_write(2, buf, n);
    _exit(87);
}

static void resolve(void) {
#define R(name) r_##name = dlsym(RTLD_NEXT, #name)
    r_open = dlsym(RTLD_NEXT, "open64");
    r_openat = dlsym(RTLD_NEXT, "openat64");
    R(write); r_pwrite = dlsym(RTLD_NEXT, "pwrite64"); R(writev);
    r_pwritev = dlsym(RTLD_NEXT, "pwritev64"); r_pwritev2 = dlsym(RTLD_NEXT, "pwritev64v2");
    if (!r_pwritev2) R(pwritev2);
    r_ftruncate = dlsym(RTLD_NEXT, "ftruncate64"); r_fallocate = dlsym(RTLD_NEXT, "fallocate64");
    r_posix_fallocate = dlsym(RTLD_NEXT, "posix_fallocate64");
    R(fsync); R(fdatasync); R(rename); R(renameat); R(renameat2); R(unlink); R(unlinkat); R(rmdir);
    R(mkdir); R(mkdirat); R(link); R(linkat); R(close); R(dup); R(dup2); R(dup3);
    r_truncate = dlsym(RTLD_NEXT, "truncate64"); r_mmap = dlsym(RTLD_NEXT, "mmap64");
    R(copy_file_range); r_sendfile = dlsym(RTLD_NEXT, "sendfile64");
#undef R
}

static uint64_t next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double unit(uint64_t *s) { return (next(s) >> 11) * (1.0 / 9007199254740992.0); }

/* ------------------------------------------------------------------ paths */

/* The absolute path of `p` (relative to dirfd or the cwd), lexically: no symlinks resolved. */
static int abspath(int dirfd, const char *p, char *dst) {
    char base[PATH_MAX];
    if (p[0] == '/') {
        snprintf(dst, PATH_MAX, "%s", p);
        return 0;
    }
    if (dirfd == AT_FDCWD) {
        if (!getcwd(base, sizeof base)) return -1;
    } else {
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
        ssize_t n = readlink(link, base, sizeof base - 1);
        if (n < 0) return -1;
        base[n] = 0;
    }
    snprintf(dst, PATH_MAX, "%s/%s", base, p);
    return 0;
}

/* Relative path under root ("" for root itself), or NULL when outside. */
static const char *under(const char *abs) {
    if (strncmp(abs, root, rootlen) != 0) return NULL;
    if (abs[rootlen] == 0) return abs + rootlen;
    if (abs[rootlen] != '/') return NULL;
    return abs + rootlen + 1;
}

static const char *under_at(int dirfd, const char *p, char *buf) {
    if (!enabled || !p || abspath(dirfd, p, buf) < 0) return NULL;
    return under(buf);
}

static int fdpath(int fd, char *dst) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, dst, PATH_MAX - 1);
    if (n < 0) return -1;
    dst[n] = 0;
    return 0;
}

/* ------------------------------------------------------------------ model */

static int find(dev_t dev, ino_t ino) {
    for (int i = 0; i < nnodes; i++) if (nodes[i].alive && nodes[i].dev == dev && nodes[i].ino == ino) return i;
    return -1;
}

static void durable_path(int id, char *dst) { snprintf(dst, PATH_MAX, "%s/%d", durable, id); }

static int add_node(const struct stat *st) {
    if (nnodes == capnodes) {
        capnodes = capnodes ? capnodes * 2 : 64;
        nodes = realloc(nodes, sizeof *nodes * capnodes);
        if (!nodes) die("powercut: out of memory");
    }
    struct node *n = &nodes[nnodes];
    memset(n, 0, sizeof *n);
    n->dev = st->st_dev;
    n->ino = st->st_ino;
    n->alive = 1;
    n->dir = S_ISDIR(st->st_mode);
    n->rfd = -1;
    return nnodes++;
}

static void copy_range(int from, int to, off_t at, size_t len) {
    char buf[1 << 16];
    while (len > 0) {
        size_t want = len < sizeof buf ? len : sizeof buf;
        ssize_t n = pread(from, buf, want, at);
        if (n < 0) die("powercut: read failed: %s", strerror(errno));
        if (n == 0) break;
        if (r_pwrite(to, buf, n, at) != n) die("powercut: model write failed: %s", strerror(errno));
        at += n;
        len -= n;
    }
}

static void open_rfd(int id, const char *abs) {
    if (nodes[id].rfd >= 0) return;
    nodes[id].rfd = r_open(abs, O_RDONLY | O_CLOEXEC);
    if (nodes[id].rfd < 0) die("powercut: cannot open %s for reading: %s", abs, strerror(errno));
}

/* A regular file first seen now: durable content `initial` bytes of it (all at start, 0 when new). */
static int add_file(const struct stat *st, const char *abs, int initial) {
    int id = add_node(st);
    char dp[PATH_MAX];
    durable_path(id, dp);
    int d = r_open(dp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    if (d < 0) die("powercut: cannot create %s: %s", dp, strerror(errno));
    open_rfd(id, abs);
    if (initial) {
        copy_range(nodes[id].rfd, d, 0, st->st_size);
        nodes[id].durable_size = st->st_size;
    }
    r_close(d);
    return id;
}

static void mark(int id, off_t from, off_t to) {
    if (to <= from) return;
    struct node *n = &nodes[id];
    size_t last = (to - 1) / PAGE;
    if (last >= n->dirty_pages) {
        size_t cap = n->dirty_pages ? n->dirty_pages : 16;
        while (cap <= last) cap *= 2;
        n->dirty = realloc(n->dirty, cap);
        if (!n->dirty) die("powercut: out of memory");
        memset(n->dirty + n->dirty_pages, 0, cap - n->dirty_pages);
        n->dirty_pages = cap;
    }
    for (size_t p = from / PAGE; p <= last; p++) n->dirty[p] = 1;
}

static void free_ents(struct node *n) {
    for (int i = 0; i < n->nents; i++) free(n->ents[i].name);
    free(n->ents);
    n->ents = NULL;
    n->nents = 0;
}

static int node_of_path(const char *abs, int initial);

/* The directory's entries as they are now become durable. */
static void snapshot_dir(int id, const char *abs, int initial) {
    DIR *d = opendir(abs);
    if (!d) die("powercut: cannot list %s: %s", abs, strerror(errno));
    struct ent *ents = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char child[PATH_MAX];
        snprintf(child, sizeof child, "%s/%s", abs, e->d_name);
        int cid = node_of_path(child, initial);
        if (cid < 0) continue; /* vanished, or neither file nor directory */
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            ents = realloc(ents, sizeof *ents * cap);
        }
        ents[n].name = strdup(e->d_name);
        ents[n].id = cid;
        n++;
    }
    closedir(d);
    free_ents(&nodes[id]);
    nodes[id].ents = ents;
    nodes[id].nents = n;
}

/* The id of what `abs` names now (registering it when new), or -1. initial: it was there at start. */
static int node_of_path(const char *abs, int initial) {
    struct stat st;
    if (lstat(abs, &st) < 0) return -1;
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) return -1;
    int id = find(st.st_dev, st.st_ino);
    if (id >= 0) return id;
    if (S_ISREG(st.st_mode)) return add_file(&st, abs, initial);
    id = add_node(&st);
    if (initial) snapshot_dir(id, abs, 1);
    return id;
}

/* The file's writes so far become durable. */
static void sync_file(int id, int fd) {
    struct node *n = &nodes[id];
    struct stat st;
    if (fstat(fd, &st) < 0) die("powercut: fstat failed: %s", strerror(errno));
    char dp[PATH_MAX];
    durable_path(id, dp);
    int d = r_open(dp, O_WRONLY | O_CLOEXEC);
    if (d < 0) die("powercut: cannot open %s: %s", dp, strerror(errno));
    for (size_t p = 0; p < n->dirty_pages; p++) {
        if (!n->dirty[p]) continue;
        if ((off_t) (p * PAGE) < st.st_size) copy_range(n->rfd, d, p * PAGE, PAGE);
        n->dirty[p] = 0;
    }
    if (r_ftruncate(d, st.st_size) < 0) die("powercut: truncate of %s failed: %s", dp, strerror(errno));
    r_close(d);
    n->durable_size = st.st_size;
}

/* ------------------------------------------------------------------ images */

static void write_file_image(int id, const char *dst) {
    struct node *n = &nodes[id];
    char dp[PATH_MAX];
    durable_path(id, dp);
    int s = r_open(dp, O_RDONLY | O_CLOEXEC);
    int d = r_open(dst, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (s < 0 || d < 0) die("powercut: image of %s at %s: %s", dp, dst, strerror(errno));
    copy_range(s, d, 0, n->durable_size);
    r_close(s);
    if (torn && n->rfd >= 0) {
        struct stat st;
        off_t size = n->durable_size;
        if (fstat(n->rfd, &st) == 0 && st.st_size != size && (next(&torn_rng) & 1)) size = st.st_size;
        if (r_ftruncate(d, size) < 0) die("powercut: truncate failed: %s", strerror(errno));
        char page[PAGE];
        for (size_t p = 0; p < n->dirty_pages && (off_t) (p * PAGE) < size; p++) {
            if (!n->dirty[p]) continue;
            int how = next(&torn_rng) % 3; /* 0 old, 1 new, 2 mixed by sector */
            if (how == 0) continue;
            ssize_t got = pread(n->rfd, page, PAGE, p * PAGE);
            if (got <= 0) continue;
            for (ssize_t sct = 0; sct < got; sct += SECTOR) {
                if (how == 2 && (next(&torn_rng) & 1)) continue;
                ssize_t len = got - sct < SECTOR ? got - sct : SECTOR;
                if ((off_t) (p * PAGE + sct) >= size) break;
                if ((off_t) (p * PAGE + sct + len) > size) len = size - (p * PAGE + sct);
                r_pwrite(d, page + sct, len, p * PAGE + sct);
            }
        }
    }
    r_close(d);
}

static void write_dir_image(int id, const char *dst, int depth) {
    if (depth > 64) die("powercut: directories nest too deep at %s", dst);
    if (r_mkdir(dst, 0755) < 0) die("powercut: mkdir %s: %s", dst, strerror(errno));
    struct node *n = &nodes[id];
    for (int i = 0; i < n->nents; i++) {
        char child[PATH_MAX];
        snprintf(child, sizeof child, "%s/%s", dst, n->ents[i].name);
        if (nodes[n->ents[i].id].dir) write_dir_image(n->ents[i].id, child, depth + 1);
        else write_file_image(n->ents[i].id, child);
    }
}

static void image(const char *name, const char *category, const char *op, const char *rel) {
    char tmp[PATH_MAX], dst[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s/.building", out);
    snprintf(dst, sizeof dst, "%s/%s", out, name);
    write_dir_image(0, tmp, 0);
    if (r_rename(tmp, dst) < 0) die("powercut: rename %s: %s", dst, strerror(errno));
    char line[PATH_MAX + 128], pf[PATH_MAX];
    int len = snprintf(line, sizeof line, "%s %s %s %s\n", name, category, op, rel);
    snprintf(pf, sizeof pf, "%s/points", out);
    int f = r_open(pf, O_CREAT | O_APPEND | O_WRONLY | O_CLOEXEC, 0644);
    if (f < 0 || r_write(f, line, len) != len) die("powercut: cannot write %s", pf);
    r_close(f);
}

static int category(const char *rel) {
    if (!strncmp(rel, "journals", 8)) return 0;
    if (!strncmp(rel, "packs", 5)) return 1;
    if (!strncmp(rel, "index.db", 8)) return 2;
    if (!strncmp(rel, "catalog.db", 10)) return 3;
    return 4;
}

static int picked(int cat, unsigned long long ordinal, unsigned long long n) {
    for (int i = 0; i < npicks[cat]; i++) if (picks[cat][i] == ordinal) return 1;
    for (int i = 0; i < noppicks; i++) if (oppicks[i] == n) return 1;
    return 0;
}

/* Operation `op` on `rel` is about to happen: count it, and maybe cut the power here. Holds mu. */
static void point(const char *op, const char *rel) {
    unsigned long long n = ++ops;
    double p = 0;
    for (int i = 0; i < nrates; i++) {
        if (!strcmp(rates[i].prefix, "*") || !strncmp(rel, rates[i].prefix, strlen(rates[i].prefix))) {
            p = rates[i].p;
            break;
        }
    }
    double u = unit(&rng);
    int cat = category(rel);
    unsigned long long ordinal = ++catops[cat];
    char name[32];
    snprintf(name, sizeof name, "%llu", n);
    if (oplog >= 0) {
        char line[PATH_MAX + 96];
        int len = snprintf(line, sizeof line, "%llu %s %s %s\n", n, categories[cat], op, rel);
        if (len > (int) sizeof line - 1) len = sizeof line - 1;
        if (r_write(oplog, line, len) != len) die("powercut: cannot write the operation log");
    }
    if (n == exit_at) {
        image(name, categories[cat], op, rel);
        _exit(86);
    }
    if ((u < p || picked(cat, ordinal, n)) && images_left > 0) {
        images_left--;
        image(name, categories[cat], op, rel);
    }
}

static void setup(void) {
    resolve();
    const char *r = getenv("CASK_POWERCUT_ROOT");
    const char *o = getenv("CASK_POWERCUT_OUT");
    if (!r || !*r) return;
    unsetenv("CASK_POWERCUT_ROOT"); /* this process only: children it starts are not watched */
    if (!o || !*o) die("powercut: CASK_POWERCUT_ROOT without CASK_POWERCUT_OUT");
    if (!realpath(r, root)) die("powercut: root %s: %s", r, strerror(errno));
    if (strcmp(root, r) != 0) die("powercut: root %s must be absolute and free of symlinks (it is %s)", r, root);
    rootlen = strlen(root);
    snprintf(out, sizeof out, "%s", o);
    snprintf(durable, sizeof durable, "%s/.durable", out);
    r_mkdir(out, 0755);
    if (r_mkdir(durable, 0755) < 0 && errno != EEXIST) die("powercut: mkdir %s: %s", durable, strerror(errno));
    const char *s = getenv("CASK_POWERCUT_SEED");
    rng = s ? strtoull(s, NULL, 10) : 0;
    torn_rng = rng ^ 0x5eed5eed5eedULL;
    const char *t = getenv("CASK_POWERCUT_TORN");
    torn = t && !strcmp(t, "1");
    const char *lg = getenv("CASK_POWERCUT_LOG");
    if (lg && !strcmp(lg, "1")) {
        char lf[PATH_MAX];
        snprintf(lf, sizeof lf, "%s/log", out);
        oplog = r_open(lf, O_CREAT | O_TRUNC | O_WRONLY | O_APPEND | O_CLOEXEC, 0644);
        if (oplog < 0) die("powercut: cannot create %s: %s", lf, strerror(errno));
    }
    const char *f = getenv("CASK_POWERCUT_FINAL");
    final_image = f && !strcmp(f, "1");
    const char *m = getenv("CASK_POWERCUT_MAX");
    if (m) images_left = atol(m);
    const char *e = getenv("CASK_POWERCUT_EXIT_AT");
    if (e) exit_at = strtoull(e, NULL, 10);
    const char *rs = getenv("CASK_POWERCUT_RATES");
    if (rs) {
        char *copy = strdup(rs), *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok && nrates < 32; tok = strtok_r(NULL, ",", &save)) {
            char *eq = strrchr(tok, '=');
            if (!eq) die("powercut: bad CASK_POWERCUT_RATES entry '%s'", tok);
            *eq = 0;
            snprintf(rates[nrates].prefix, sizeof rates[nrates].prefix, "%s", tok);
            rates[nrates].p = atof(eq + 1);
            nrates++;
        }
        free(copy);
    }
    const char *pk = getenv("CASK_POWERCUT_PICK"); /* "journal=3,17;index=5" */
    if (pk) {
        char *copy = strdup(pk), *save = NULL;
        for (char *tok = strtok_r(copy, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
            char *eq = strchr(tok, '=');
            if (!eq) die("powercut: bad CASK_POWERCUT_PICK entry '%s'", tok);
            *eq = 0;
            int cat = -1;
            for (int i = 0; i < NCAT; i++) if (!strcmp(tok, categories[i])) cat = i;
            int byop = !strcmp(tok, "op");
            if (cat < 0 && !byop) die("powercut: unknown category '%s' in CASK_POWERCUT_PICK", tok);
            char *save2 = NULL;
            for (char *v = strtok_r(eq + 1, ",", &save2); v; v = strtok_r(NULL, ",", &save2)) {
                if (byop) {
                    oppicks = realloc(oppicks, sizeof *oppicks * (noppicks + 1));
                    oppicks[noppicks++] = strtoull(v, NULL, 10);
                    continue;
                }
                picks[cat] = realloc(picks[cat], sizeof **picks * (npicks[cat] + 1));
                picks[cat][npicks[cat]++] = strtoull(v, NULL, 10);
            }
        }
        free(copy);
    }
    struct stat st;
    if (lstat(root, &st) < 0 || !S_ISDIR(st.st_mode)) die("powercut: root %s is not a directory", root);
    add_node(&st); /* id 0 */
    snapshot_dir(0, root, 1);
    enabled = 1;
}

static void init(void) { pthread_once(&once, setup); }

__attribute__((constructor)) static void powercut_init(void) { init(); }

__attribute__((destructor)) static void powercut_fini(void) {
    if (!enabled) return;
    pthread_mutex_lock(&mu);
    char pf[PATH_MAX], line[256];
    snprintf(pf, sizeof pf, "%s/ops", out);
    int len = snprintf(line, sizeof line, "total=%llu journal=%llu pack=%llu index=%llu catalog=%llu other=%llu\n",
                       ops, catops[0], catops[1], catops[2], catops[3], catops[4]);
    int f = r_open(pf, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (f >= 0) {
        r_write(f, line, len);
        r_close(f);
    }
    if (final_image) image("final", "exit", "exit", "");
    enabled = 0;
    pthread_mutex_unlock(&mu);
}

/** Operations counted so far (for acknowledgements: everything they covered is at or below it). */
unsigned long long powercut_ops(void) {
    pthread_mutex_lock(&mu);
    unsigned long long n = ops;
    pthread_mutex_unlock(&mu);
    return n;
}

/* ------------------------------------------------------------------ interposed calls */

static int watched(int fd) { return enabled && fd >= 0 && fd < MAXFD && fdid[fd]; }

static const char *rel_of_fd(int fd, char *buf) {
    if (fdpath(fd, buf) < 0) return "?";
    const char *r = under(buf);
    return r ? r : "?";
}

/* After a successful open of something under root: watch the fd. Holds mu. */
static void track(int fd, int flags) {
    char abs[PATH_MAX];
    if (fd < 0 || fd >= MAXFD || fdpath(fd, abs) < 0 || !under(abs)) return;
    struct stat st;
    if (fstat(fd, &st) < 0 || (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))) return;
    int id = find(st.st_dev, st.st_ino);
    if (id < 0) {
        if (S_ISDIR(st.st_mode)) id = add_node(&st);
        else id = add_file(&st, abs, 0); /* new: nothing durable yet */
    } else if (!nodes[id].dir && (flags & O_TRUNC)) {
        mark(id, 0, nodes[id].durable_size);
    }
    fdid[fd] = id + 1;
}

static int do_open(int dirfd, const char *path, int flags, mode_t mode) {
    init();
    char abs[PATH_MAX];
    const char *rel = under_at(dirfd, path, abs);
    if (!rel) {
        int fd = dirfd == AT_FDCWD ? r_open(path, flags, mode) : r_openat(dirfd, path, flags, mode);
        if (watched(fd)) { /* a number whose close we did not see (closed by a path we do not watch) */
            pthread_mutex_lock(&mu);
            fdid[fd] = 0;
            pthread_mutex_unlock(&mu);
        }
        return fd;
    }
    pthread_mutex_lock(&mu);
    if (flags & (O_CREAT | O_TRUNC)) point((flags & O_TRUNC) ? "open-trunc" : "open-create", rel);
    int fd = dirfd == AT_FDCWD ? r_open(path, flags, mode) : r_openat(dirfd, path, flags, mode);
    int saved = errno;
    if (fd >= 0) track(fd, flags);
    pthread_mutex_unlock(&mu);
    errno = saved;
    return fd;
}

#define MODE_ARG(flags) mode_t mode = 0; \
    if ((flags) & (O_CREAT | __O_TMPFILE)) { va_list ap; va_start(ap, flags); mode = va_arg(ap, int); va_end(ap); }

int open(const char *path, int flags, ...) { MODE_ARG(flags); return do_open(AT_FDCWD, path, flags, mode); }
int open64(const char *path, int flags, ...) { MODE_ARG(flags); return do_open(AT_FDCWD, path, flags, mode); }
int openat(int dirfd, const char *path, int flags, ...) { MODE_ARG(flags); return do_open(dirfd, path, flags, mode); }
int openat64(int dirfd, const char *path, int flags, ...) { MODE_ARG(flags); return do_open(dirfd, path, flags, mode); }
int __open_2(const char *path, int flags) { return do_open(AT_FDCWD, path, flags, 0); }
int __open64_2(const char *path, int flags) { return do_open(AT_FDCWD, path, flags, 0); }
int __openat_2(int dirfd, const char *path, int flags) { return do_open(dirfd, path, flags, 0); }
int __openat64_2(int dirfd, const char *path, int flags) { return do_open(dirfd, path, flags, 0); }
int creat(const char *path, mode_t mode) { return do_open(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode); }
int creat64(const char *path, mode_t mode) { return do_open(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode); }

/* Where a write without an offset lands. */
static off_t current_offset(int fd) {
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && (fl & O_APPEND)) {
        struct stat st;
        return fstat(fd, &st) == 0 ? st.st_size : 0;
    }
    return lseek(fd, 0, SEEK_CUR);
}

#define WRITE_OP(opname, at, call) \
    init(); \
    if (!watched(fd)) return call; \
    pthread_mutex_lock(&mu); \
    char rb[PATH_MAX]; \
    point(opname, rel_of_fd(fd, rb)); \
    off_t from = (at); \
    ssize_t r = call; \
    int saved = errno; \
    if (r > 0 && fdid[fd]) mark(fdid[fd] - 1, from, from + r); \
    pthread_mutex_unlock(&mu); \
    errno = saved; \
    return r;

ssize_t write(int fd, const void *b, size_t n) { WRITE_OP("write", current_offset(fd), r_write(fd, b, n)) }
ssize_t pwrite(int fd, const void *b, size_t n, off_t o) { WRITE_OP("pwrite", o, r_pwrite(fd, b, n, o)) }
ssize_t pwrite64(int fd, const void *b, size_t n, off_t o) { WRITE_OP("pwrite", o, r_pwrite(fd, b, n, o)) }
ssize_t writev(int fd, const struct iovec *v, int c) { WRITE_OP("writev", current_offset(fd), r_writev(fd, v, c)) }
ssize_t pwritev(int fd, const struct iovec *v, int c, off_t o) { WRITE_OP("pwritev", o, r_pwritev(fd, v, c, o)) }
ssize_t pwritev64(int fd, const struct iovec *v, int c, off_t o) { WRITE_OP("pwritev", o, r_pwritev(fd, v, c, o)) }
ssize_t pwritev2(int fd, const struct iovec *v, int c, off_t o, int fl) { WRITE_OP("pwritev2", o < 0 ? current_offset(fd) : o, r_pwritev2(fd, v, c, o, fl)) }
ssize_t pwritev64v2(int fd, const struct iovec *v, int c, off_t o, int fl) { WRITE_OP("pwritev2", o < 0 ? current_offset(fd) : o, r_pwritev2(fd, v, c, o, fl)) }

static int resize_op(int fd, const char *opname, off_t lo, off_t hi, int (*call)(int, int, off_t, off_t), int mode, off_t a, off_t b) {
    pthread_mutex_lock(&mu);
    char rb[PATH_MAX];
    point(opname, rel_of_fd(fd, rb));
    struct stat before;
    fstat(fd, &before);
    int r = call(fd, mode, a, b);
    int saved = errno;
    struct stat after;
    if (r == 0 && fstat(fd, &after) == 0) {
        off_t s0 = before.st_size < after.st_size ? before.st_size : after.st_size;
        off_t s1 = before.st_size < after.st_size ? after.st_size : before.st_size;
        mark(fdid[fd] - 1, s0, s1);
        mark(fdid[fd] - 1, lo, hi);
    }
    pthread_mutex_unlock(&mu);
    errno = saved;
    return r;
}

static int call_ftruncate(int fd, int mode, off_t a, off_t b) { (void) mode; (void) b; return r_ftruncate(fd, a); }
static int call_fallocate(int fd, int mode, off_t a, off_t b) { return r_fallocate(fd, mode, a, b); }
static int call_posix_fallocate(int fd, int mode, off_t a, off_t b) { (void) mode; return r_posix_fallocate(fd, a, b); }

int ftruncate(int fd, off_t len) { init(); if (!watched(fd)) return r_ftruncate(fd, len); return resize_op(fd, "ftruncate", 0, 0, call_ftruncate, 0, len, 0); }
int ftruncate64(int fd, off_t len) { return ftruncate(fd, len); }
int fallocate(int fd, int mode, off_t o, off_t l) { init(); if (!watched(fd)) return r_fallocate(fd, mode, o, l); return resize_op(fd, "fallocate", o, o + l, call_fallocate, mode, o, l); }
int fallocate64(int fd, int mode, off_t o, off_t l) { return fallocate(fd, mode, o, l); }
int posix_fallocate(int fd, off_t o, off_t l) { init(); if (!watched(fd)) return r_posix_fallocate(fd, o, l); return resize_op(fd, "posix_fallocate", o, o + l, call_posix_fallocate, 0, o, l); }
int posix_fallocate64(int fd, off_t o, off_t l) { return posix_fallocate(fd, o, l); }

static int do_sync(int fd, const char *opname, int (*real)(int)) {
    init();
    if (!watched(fd)) return real(fd);
    pthread_mutex_lock(&mu);
    char abs[PATH_MAX];
    const char *rel = fdpath(fd, abs) == 0 && under(abs) ? under(abs) : "?";
    point(opname, rel);
    int id = fdid[fd] - 1;
    if (nodes[id].dir) {
        if (nodes[id].alive && strcmp(rel, "?")) snapshot_dir(id, abs, 0);
    } else {
        sync_file(id, fd);
    }
    pthread_mutex_unlock(&mu);
    return 0; /* the model holds what is durable: the real disk need not be bothered */
}

int fsync(int fd) { return do_sync(fd, "fsync", r_fsync); }
int fdatasync(int fd) { return do_sync(fd, "fdatasync", r_fdatasync); }

static int do_rename(int ofd, const char *o, int nfd, const char *n, unsigned flags, int how) {
    init();
    char a1[PATH_MAX], a2[PATH_MAX];
    const char *r1 = under_at(ofd, o, a1), *r2 = under_at(nfd, n, a2);
    if (!r1 && !r2) {
        if (how == 0) return r_rename(o, n);
        if (how == 1) return r_renameat(ofd, o, nfd, n);
        return r_renameat2(ofd, o, nfd, n, flags);
    }
    if (flags) die("powercut: renameat2 with flags %u under %s is not modelled", flags, root);
    pthread_mutex_lock(&mu);
    point("rename", r1 ? r1 : r2);
    struct stat s1, s2;
    int replaced = lstat(a2, &s2) == 0 && lstat(a1, &s1) == 0 && (s1.st_ino != s2.st_ino || s1.st_dev != s2.st_dev);
    if (replaced) {
        int id = find(s2.st_dev, s2.st_ino);
        if (id >= 0 && (S_ISDIR(s2.st_mode) || s2.st_nlink <= 1)) {
            /* unbound only if the rename succeeds */
        } else {
            id = -1;
        }
        int r = how == 0 ? r_rename(o, n) : how == 1 ? r_renameat(ofd, o, nfd, n) : r_renameat2(ofd, o, nfd, n, 0);
        int saved = errno;
        if (r == 0 && id >= 0) nodes[id].alive = 0;
        pthread_mutex_unlock(&mu);
        errno = saved;
        return r;
    }
    int r = how == 0 ? r_rename(o, n) : how == 1 ? r_renameat(ofd, o, nfd, n) : r_renameat2(ofd, o, nfd, n, 0);
    int saved = errno;
    pthread_mutex_unlock(&mu);
    errno = saved;
    return r;
}

int rename(const char *o, const char *n) { return do_rename(AT_FDCWD, o, AT_FDCWD, n, 0, 0); }
int renameat(int ofd, const char *o, int nfd, const char *n) { return do_rename(ofd, o, nfd, n, 0, 1); }
int renameat2(int ofd, const char *o, int nfd, const char *n, unsigned fl) { return do_rename(ofd, o, nfd, n, fl, 2); }

static int do_remove(int dirfd, const char *p, int flags, const char *opname, int how) {
    init();
    char abs[PATH_MAX];
    const char *rel = under_at(dirfd, p, abs);
    if (!rel) return how == 0 ? r_unlink(p) : how == 1 ? r_rmdir(p) : r_unlinkat(dirfd, p, flags);
    pthread_mutex_lock(&mu);
    point(opname, rel);
    struct stat st;
    int had = lstat(abs, &st) == 0;
    int id = had ? find(st.st_dev, st.st_ino) : -1;
    int r = how == 0 ? r_unlink(p) : how == 1 ? r_rmdir(p) : r_unlinkat(dirfd, p, flags);
    int saved = errno;
    if (r == 0 && id >= 0 && (S_ISDIR(st.st_mode) || st.st_nlink <= 1)) nodes[id].alive = 0;
    pthread_mutex_unlock(&mu);
    errno = saved;
    return r;
}

int unlink(const char *p) { return do_remove(AT_FDCWD, p, 0, "unlink", 0); }
int rmdir(const char *p) { return do_remove(AT_FDCWD, p, 0, "rmdir", 1); }
int unlinkat(int dirfd, const char *p, int flags) { return do_remove(dirfd, p, flags, (flags & AT_REMOVEDIR) ? "rmdir" : "unlink", 2); }

static int do_mkdir(int dirfd, const char *p, mode_t mode) {
    init();
    char abs[PATH_MAX];
    const char *rel = under_at(dirfd, p, abs);
    if (!rel) return dirfd == AT_FDCWD ? r_mkdir(p, mode) : r_mkdirat(dirfd, p, mode);
    pthread_mutex_lock(&mu);
    point("mkdir", rel);
    int r = dirfd == AT_FDCWD ? r_mkdir(p, mode) : r_mkdirat(dirfd, p, mode);
    int saved = errno;
    if (r == 0) {
        struct stat st;
        if (lstat(abs, &st) == 0 && find(st.st_dev, st.st_ino) < 0) add_node(&st); /* new: durable and empty */
    }
    pthread_mutex_unlock(&mu);
    errno = saved;
    return r;
}

int mkdir(const char *p, mode_t mode) { return do_mkdir(AT_FDCWD, p, mode); }
int mkdirat(int dirfd, const char *p, mode_t mode) { return do_mkdir(dirfd, p, mode); }

static int do_link(int ofd, const char *o, int nfd, const char *n, int flags, int how) {
    init();
    char a1[PATH_MAX], a2[PATH_MAX];
    const char *r2 = under_at(nfd, n, a2);
    if (!r2 && !under_at(ofd, o, a1)) return how == 0 ? r_link(o, n) : r_linkat(ofd, o, nfd, n, flags);
    pthread_mutex_lock(&mu);
    point("link", r2 ? r2 : "?");
    int r = how == 0 ? r_link(o, n) : r_linkat(ofd, o, nfd, n, flags);
    int saved = errno;
    pthread_mutex_unlock(&mu);
    errno = saved;
    return r;
}

int link(const char *o, const char *n) { return do_link(AT_FDCWD, o, AT_FDCWD, n, 0, 0); }
int linkat(int ofd, const char *o, int nfd, const char *n, int flags) { return do_link(ofd, o, nfd, n, flags, 1); }

int truncate(const char *p, off_t len) {
    init();
    char abs[PATH_MAX];
    if (under_at(AT_FDCWD, p, abs)) die("powercut: truncate(%s) by name is not modelled", abs);
    return r_truncate(p, len);
}
int truncate64(const char *p, off_t len) { return truncate(p, len); }

int close(int fd) {
    init();
    if (watched(fd)) {
        pthread_mutex_lock(&mu);
        fdid[fd] = 0;
        pthread_mutex_unlock(&mu);
    }
    return r_close(fd);
}

static int dup_track(int from, int to) {
    if (to >= 0 && to < MAXFD && enabled) {
        pthread_mutex_lock(&mu);
        fdid[to] = from >= 0 && from < MAXFD ? fdid[from] : 0;
        pthread_mutex_unlock(&mu);
    }
    return to;
}

int dup(int fd) { init(); return dup_track(fd, r_dup(fd)); }
int dup2(int fd, int to) { init(); return dup_track(fd, r_dup2(fd, to)); }
int dup3(int fd, int to, int fl) { init(); return dup_track(fd, r_dup3(fd, to, fl)); }

void *mmap(void *a, size_t len, int prot, int flags, int fd, off_t off) {
    init();
    if (watched(fd) && (prot & PROT_WRITE) && (flags & MAP_SHARED)) {
        char abs[PATH_MAX];
        const char *rel = rel_of_fd(fd, abs);
        size_t l = strlen(rel);
        if (l < 4 || strcmp(rel + l - 4, "-shm")) die("powercut: a shared writable mapping of %s is not modelled", rel);
    }
    return r_mmap(a, len, prot, flags, fd, off);
}
void *mmap64(void *a, size_t len, int prot, int flags, int fd, off_t off) { return mmap(a, len, prot, flags, fd, off); }

ssize_t copy_file_range(int in, off_t *ino, int o, off_t *outo, size_t len, unsigned fl) {
    init();
    if (watched(o)) die("powercut: copy_file_range into a watched file is not modelled");
    return r_copy_file_range(in, ino, o, outo, len, fl);
}

ssize_t sendfile(int o, int in, off_t *off, size_t n) {
    init();
    if (watched(o)) die("powercut: sendfile into a watched file is not modelled");
    return r_sendfile(o, in, off, n);
}
ssize_t sendfile64(int o, int in, off_t *off, size_t n) { return sendfile(o, in, off, n); }
