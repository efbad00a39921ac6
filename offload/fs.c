/* weft — file I/O on the WEFT_POOL_FS thread pool (weft/fs.h).
 *
 * Each call packs its system call into an `fsop` that the pool owns if the
 * caller gives up (weft_thread_opts.release), so a cancelled call returns at
 * once and leaves nothing dangling: paths are copied, reads go into the
 * op's own buffer and are copied out only on success, writes are copied in
 * before they are queued, and every op on a file holds a reference to it, so
 * its descriptor is closed only after the last op touching it has finished.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <weft/fs.h>
#include <weft/thread.h>

#include "internal.h"

#define IO_MAX ((size_t)4 << 20) /* bytes per read or write op */

struct weft_file {
  int fd;
  int refs; /* atomic: the user's handle plus one per op in flight */
  bool append;
  int64_t pos; /* loop thread only */
  char *path;
};

enum {
  OP_OPEN,
  OP_CLOSE,
  OP_PREAD,
  OP_PWRITE,
  OP_WRITE, /* O_APPEND: write(2) */
  OP_FSYNC,
  OP_FSTAT,
  OP_STAT,
  OP_RENAME,
  OP_UNLINK,
  OP_MKDIR,
  OP_RMDIR,
};

static const char *const op_names[] = {
    "open",  "close", "read",   "write",  "write", "fsync",
    "fstat", "stat",  "rename", "unlink", "mkdir", "rmdir",
};

typedef struct fsop {
  int op;
  weft_file *f; /* a reference, for ops on a file */
  char *path, *path2;
  void *buf; /* the op's own buffer */
  size_t len;
  int64_t off;
  int flags, mode;
  int fd; /* OP_OPEN's result, -1 until then */
  struct stat st;
} fsop;

static __thread char errmsg[512];

const char *weft_fs_errmsg(void) { return errmsg; }

static int fail(int rc, int op, const char *path, const char *path2) {
  if (rc >= 0 || rc == WEFT_ECANCELED || rc == WEFT_ETIMEDOUT)
    return rc;
  if (path2 != NULL)
    snprintf(errmsg, sizeof errmsg, "%s '%s' to '%s': %s", op_names[op], path,
             path2, weft_strerror(rc));
  else
    snprintf(errmsg, sizeof errmsg, "%s '%s': %s", op_names[op],
             path ? path : "?", weft_strerror(rc));
  return rc;
}

static void file_unref(weft_file *f) {
  if (__atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) != 0)
    return;
  if (f->fd >= 0)
    close(f->fd);
  weft__free(f->path);
  weft__free(f);
}

static void op_free(void *p) {
  fsop *o = p;
  if (o->op == OP_OPEN && o->fd >= 0)
    close(o->fd); /* opened for a caller that gave up */
  if (o->f != NULL)
    file_unref(o->f);
  weft__free(o->path);
  weft__free(o->path2);
  weft__free(o->buf);
  weft__free(o);
}

/* Runs on a worker thread. Returns a count or -errno. */
static intptr_t op_run(void *p) {
  fsop *o = p;
  ssize_t n;
  int rc;
  switch (o->op) {
  case OP_OPEN:
    do
      o->fd = open(o->path, o->flags | O_CLOEXEC, o->mode);
    while (o->fd < 0 && errno == EINTR);
    return o->fd < 0 ? -errno : 0;
  case OP_CLOSE: {
    /* The op holds the file's last reference unless others are still in
     * flight; whoever drops the last one closes the descriptor. */
    weft_file *f = o->f;
    o->f = NULL;
    if (__atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) != 0)
      return 0;
    rc = close(f->fd);
    int err = rc < 0 && errno != EINTR ? -errno : 0;
    weft__free(f->path);
    weft__free(f);
    return err;
  }
  case OP_PREAD:
    do
      n = pread(o->f->fd, o->buf, o->len, o->off);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
  case OP_PWRITE:
  case OP_WRITE: {
    size_t done = 0;
    while (done < o->len) {
      if (o->op == OP_WRITE)
        n = write(o->f->fd, (char *)o->buf + done, o->len - done);
      else
        n = pwrite(o->f->fd, (char *)o->buf + done, o->len - done,
                   o->off + (int64_t)done);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return -errno;
      if (n == 0)
        return WEFT_EIO;
      done += (size_t)n;
    }
    return (intptr_t)done;
  }
  case OP_FSYNC:
    return fsync(o->f->fd) < 0 ? -errno : 0;
  case OP_FSTAT:
    return fstat(o->f->fd, &o->st) < 0 ? -errno : 0;
  case OP_STAT:
    return stat(o->path, &o->st) < 0 ? -errno : 0;
  case OP_RENAME:
    return rename(o->path, o->path2) < 0 ? -errno : 0;
  case OP_UNLINK:
    return unlink(o->path) < 0 ? -errno : 0;
  case OP_MKDIR:
    return mkdir(o->path, (mode_t)o->mode) < 0 ? -errno : 0;
  case OP_RMDIR:
    return rmdir(o->path) < 0 ? -errno : 0;
  }
  return WEFT_EINVAL;
}

/* Makes an op; `path`/`path2` are copied, `f` gets a reference. */
static fsop *op_new(int op, weft_file *f, const char *path, const char *path2) {
  fsop *o = weft__calloc(1, sizeof *o);
  if (o == NULL)
    return NULL;
  o->op = op;
  o->fd = -1;
  if ((path && (o->path = weft__strdup(path)) == NULL) ||
      (path2 && (o->path2 = weft__strdup(path2)) == NULL)) {
    op_free(o);
    return NULL;
  }
  if (f != NULL) {
    __atomic_add_fetch(&f->refs, 1, __ATOMIC_ACQ_REL);
    o->f = f;
  }
  return o;
}

/* Runs the op on the fs pool. Returns 0 with the op's result in *res and
 * the op still the caller's, or an error with the op gone. */
static int op_exec(fsop *o, intptr_t *res) {
  weft_thread_opts to = {.size = sizeof to,
                         .pool = weft_threadpool_default(WEFT_POOL_FS),
                         .release = op_free};
  if (to.pool == NULL) {
    op_free(o);
    return WEFT_ENOMEM;
  }
  int rc = weft_to_thread_opts(op_run, o, res, &to);
  if (rc == WEFT_ENOMEM || rc == WEFT_EINVAL || rc == WEFT_ENOTASK ||
      rc == WEFT_EAGAIN)
    op_free(o); /* not released by the pool */
  return rc;
}

/* Runs an op whose result is only a status, and frees it. */
static int op_simple(int op, weft_file *f, const char *path, const char *path2,
                     int mode) {
  if (weft_current() == NULL)
    return WEFT_ENOTASK;
  fsop *o = op_new(op, f, path, path2);
  if (o == NULL)
    return WEFT_ENOMEM;
  o->mode = mode;
  intptr_t res = 0;
  int rc = op_exec(o, &res);
  if (rc == 0) {
    op_free(o);
    rc = (int)res;
  }
  return fail(rc, op, f ? f->path : path, path2);
}

int weft_file_open(weft_file **out, const char *path, int flags, int mode) {
  if (out == NULL || path == NULL)
    return WEFT_EINVAL;
  *out = NULL;
  if (weft_current() == NULL)
    return WEFT_ENOTASK;
  weft_file *f = weft__calloc(1, sizeof *f);
  fsop *o = op_new(OP_OPEN, NULL, path, NULL);
  if (f == NULL || o == NULL || (f->path = weft__strdup(path)) == NULL) {
    weft__free(f);
    if (o)
      op_free(o);
    return WEFT_ENOMEM;
  }
  o->flags = flags;
  o->mode = mode;
  intptr_t res = 0;
  int rc = op_exec(o, &res);
  if (rc == 0) {
    rc = (int)res;
    f->fd = o->fd;
    o->fd = -1;
    op_free(o);
  }
  if (rc != 0) {
    weft__free(f->path);
    weft__free(f);
    return fail(rc, OP_OPEN, path, NULL);
  }
  f->refs = 1;
  f->append = (flags & O_APPEND) != 0;
  *out = f;
  return 0;
}

int weft_file_close(weft_file *f) {
  if (f == NULL)
    return 0;
  fsop *o = weft__calloc(1, sizeof *o);
  if (o == NULL || weft_current() == NULL) {
    /* Cannot hand it to the pool: drop the handle here. */
    weft__free(o);
    file_unref(f);
    return o == NULL ? WEFT_ENOMEM : WEFT_ENOTASK;
  }
  o->op = OP_CLOSE;
  o->fd = -1;
  o->f = f; /* takes over the user's reference */
  char path[256];
  snprintf(path, sizeof path, "%s", f->path);
  intptr_t res = 0;
  int rc = op_exec(o, &res);
  if (rc == 0) {
    op_free(o);
    rc = (int)res;
  }
  return fail(rc, OP_CLOSE, path, NULL);
}

static int64_t do_pread(weft_file *f, void *buf, size_t len, int64_t off) {
  if (f == NULL || (buf == NULL && len > 0) || off < 0)
    return WEFT_EINVAL;
  if (weft_current() == NULL)
    return WEFT_ENOTASK;
  if (len > IO_MAX)
    len = IO_MAX;
  fsop *o = op_new(OP_PREAD, f, NULL, NULL);
  if (o == NULL || (o->buf = weft__malloc(len ? len : 1)) == NULL) {
    if (o)
      op_free(o);
    return WEFT_ENOMEM;
  }
  o->len = len;
  o->off = off;
  intptr_t res = 0;
  int rc = op_exec(o, &res);
  if (rc != 0)
    return fail(rc, OP_PREAD, f->path, NULL);
  if (res > 0)
    memcpy(buf, o->buf, (size_t)res);
  op_free(o);
  return res < 0 ? fail((int)res, OP_PREAD, f->path, NULL) : res;
}

int64_t weft_file_pread(weft_file *f, void *buf, size_t len, int64_t offset) {
  return do_pread(f, buf, len, offset);
}

int64_t weft_file_read(weft_file *f, void *buf, size_t len) {
  if (f == NULL)
    return WEFT_EINVAL;
  int64_t n = do_pread(f, buf, len, f->pos);
  if (n > 0)
    f->pos += n;
  return n;
}

static int do_write(weft_file *f, const void *buf, size_t len, int64_t off,
                    bool at_pos) {
  if (f == NULL || (buf == NULL && len > 0) || off < 0)
    return WEFT_EINVAL;
  if (weft_current() == NULL)
    return WEFT_ENOTASK;
  size_t done = 0;
  do {
    size_t chunk = len - done < IO_MAX ? len - done : IO_MAX;
    int op = at_pos && f->append ? OP_WRITE : OP_PWRITE;
    fsop *o = op_new(op, f, NULL, NULL);
    if (o == NULL || (o->buf = weft__malloc(chunk ? chunk : 1)) == NULL) {
      if (o)
        op_free(o);
      return WEFT_ENOMEM;
    }
    if (chunk)
      memcpy(o->buf, (const char *)buf + done, chunk);
    o->len = chunk;
    o->off = at_pos ? f->pos : off + (int64_t)done;
    intptr_t res = 0;
    int rc = op_exec(o, &res);
    if (rc != 0)
      return fail(rc, op, f->path, NULL);
    op_free(o);
    if (res < 0)
      return fail((int)res, op, f->path, NULL);
    done += (size_t)res;
    if (at_pos)
      f->pos += res;
  } while (done < len);
  return 0;
}

int weft_file_write(weft_file *f, const void *buf, size_t len) {
  return do_write(f, buf, len, 0, true);
}

int weft_file_pwrite(weft_file *f, const void *buf, size_t len,
                     int64_t offset) {
  return do_write(f, buf, len, offset, false);
}

int weft_file_fsync(weft_file *f) {
  if (f == NULL)
    return WEFT_EINVAL;
  return op_simple(OP_FSYNC, f, NULL, NULL, 0);
}

static int stat_op(int op, weft_file *f, const char *path, struct stat *st) {
  if (weft_current() == NULL)
    return WEFT_ENOTASK;
  fsop *o = op_new(op, f, path, NULL);
  if (o == NULL)
    return WEFT_ENOMEM;
  intptr_t res = 0;
  int rc = op_exec(o, &res);
  if (rc != 0)
    return fail(rc, op, f ? f->path : path, NULL);
  rc = (int)res;
  if (rc == 0 && st != NULL)
    *st = o->st;
  op_free(o);
  return fail(rc, op, f ? f->path : path, NULL);
}

int weft_file_stat(weft_file *f, struct stat *st) {
  if (f == NULL)
    return WEFT_EINVAL;
  return stat_op(OP_FSTAT, f, NULL, st);
}

int64_t weft_file_tell(const weft_file *f) { return f->pos; }
void weft_file_seek(weft_file *f, int64_t offset) {
  f->pos = offset < 0 ? 0 : offset;
}
const char *weft_file_path(const weft_file *f) { return f->path; }

int weft_fs_stat(const char *path, struct stat *st) {
  if (path == NULL)
    return WEFT_EINVAL;
  return stat_op(OP_STAT, NULL, path, st);
}

int weft_fs_rename(const char *from, const char *to) {
  if (from == NULL || to == NULL)
    return WEFT_EINVAL;
  return op_simple(OP_RENAME, NULL, from, to, 0);
}

int weft_fs_unlink(const char *path) {
  if (path == NULL)
    return WEFT_EINVAL;
  return op_simple(OP_UNLINK, NULL, path, NULL, 0);
}

int weft_fs_mkdir(const char *path, int mode) {
  if (path == NULL)
    return WEFT_EINVAL;
  return op_simple(OP_MKDIR, NULL, path, NULL, mode ? mode : 0777);
}

int weft_fs_rmdir(const char *path) {
  if (path == NULL)
    return WEFT_EINVAL;
  return op_simple(OP_RMDIR, NULL, path, NULL, 0);
}

/* ---- whole files ---- */

int weft_fs_read_file(const char *path, weft_bytes *out, size_t max) {
  if (path == NULL || out == NULL)
    return WEFT_EINVAL;
  out->data = NULL;
  out->len = 0;
  weft_file *f;
  int rc = weft_file_open(&f, path, O_RDONLY, 0);
  if (rc != 0)
    return rc;
  struct stat st;
  rc = weft_file_stat(f, &st);
  /* The size is a hint (the file may grow or be a pipe): read until EOF. */
  size_t cap = rc == 0 && st.st_size > 0 ? (size_t)st.st_size + 1 : 4096;
  if (max && cap > max + 1)
    cap = max + 1;
  uint8_t *buf = rc == 0 ? weft__malloc(cap) : NULL;
  if (rc == 0 && buf == NULL)
    rc = WEFT_ENOMEM;
  size_t len = 0;
  while (rc == 0) {
    if (len == cap) {
      if (max && cap > max) {
        rc = fail(WEFT_EMSGSIZE, OP_PREAD, path, NULL);
        break;
      }
      size_t ncap = cap * 2;
      if (max && ncap > max + 1)
        ncap = max + 1;
      uint8_t *nb = weft__realloc(buf, ncap);
      if (nb == NULL) {
        rc = WEFT_ENOMEM;
        break;
      }
      buf = nb;
      cap = ncap;
    }
    int64_t n = weft_file_read(f, buf + len, cap - len);
    if (n < 0)
      rc = (int)n;
    else if (n == 0)
      break;
    else
      len += (size_t)n;
  }
  if (rc == 0 && max && len > max)
    rc = fail(WEFT_EMSGSIZE, OP_PREAD, path, NULL);
  int crc = weft_file_close(f);
  if (rc == 0)
    rc = crc;
  if (rc != 0) {
    weft__free(buf);
    return rc;
  }
  out->data = buf;
  out->len = len;
  return 0;
}

int weft_fs_write_file(const char *path, const void *data, size_t len,
                       int mode) {
  if (path == NULL || (data == NULL && len > 0))
    return WEFT_EINVAL;
  weft_file *f;
  int rc = weft_file_open(&f, path, O_WRONLY | O_CREAT | O_TRUNC,
                          mode ? mode : 0644);
  if (rc != 0)
    return rc;
  rc = weft_file_write(f, data, len);
  int crc = weft_file_close(f);
  return rc != 0 ? rc : crc;
}

/* ---- lines ---- */

struct weft_lines {
  weft_file *f;
  char *buf;
  size_t cap;        /* == max_line */
  size_t start, end; /* unread bytes: buf[start..end) */
  bool eof;
  bool skipping; /* inside a line longer than cap: drop to its '\n' */
};

int weft_lines_new(weft_lines **out, weft_file *f, size_t max_line) {
  if (out == NULL || f == NULL)
    return WEFT_EINVAL;
  weft_lines *r = weft__calloc(1, sizeof *r);
  if (r == NULL)
    return WEFT_ENOMEM;
  r->cap = max_line ? max_line : 64 * 1024;
  r->buf = weft__malloc(r->cap);
  if (r->buf == NULL) {
    weft__free(r);
    return WEFT_ENOMEM;
  }
  r->f = f;
  *out = r;
  return 0;
}

void weft_lines_free(weft_lines *r) {
  if (r == NULL)
    return;
  weft__free(r->buf);
  weft__free(r);
}

int weft_lines_next(weft_lines *r, const char **line, size_t *len) {
  for (;;) {
    char *s = r->buf + r->start;
    size_t avail = r->end - r->start;
    char *nl = avail ? memchr(s, '\n', avail) : NULL;
    if (nl != NULL) {
      r->start += (size_t)(nl - s) + 1;
      if (r->skipping) {
        r->skipping = false;
        return WEFT_ELIMIT; /* the long line ends here */
      }
      *line = s;
      *len = (size_t)(nl - s);
      return 0;
    }
    if (r->eof) {
      if (avail == 0 && !r->skipping)
        return WEFT_EOF;
      r->start = r->end;
      if (r->skipping) {
        r->skipping = false;
        return WEFT_ELIMIT;
      }
      *line = s;
      *len = avail;
      return 0;
    }
    if (avail == r->cap) {
      /* A line that fills the whole buffer: drop what we have and skip to
       * its end, so memory stays bounded. */
      r->start = r->end = 0;
      r->skipping = true;
      continue;
    }
    if (r->start > 0) {
      memmove(r->buf, s, avail);
      r->start = 0;
      r->end = avail;
    }
    int64_t n = weft_file_read(r->f, r->buf + r->end, r->cap - r->end);
    if (n < 0)
      return (int)n;
    if (n == 0)
      r->eof = true;
    r->end += (size_t)n;
  }
}
