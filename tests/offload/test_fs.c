/* weft tests — async file I/O: round trips of every call, the error paths
 * (missing file, permission denied, a directory where a file was expected)
 * with messages naming the path, whole-file helpers, line-by-line reading
 * with bounded memory, and what a cancelled call leaves behind. */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <weft/fs.h>
#include <weft/thread.h>

#include "test.h"

static char dir[256];

static const char *path_in(const char *name) {
  static char buf[4][512];
  static int i;
  i = (i + 1) % 4;
  snprintf(buf[i], sizeof buf[i], "%s/%s", dir, name);
  return buf[i];
}

#define T_MSG_HAS(needle)                                                      \
  do {                                                                         \
    if (strstr(weft_fs_errmsg(), (needle)) == NULL)                            \
      t__fail(__FILE__, __LINE__, "errmsg \"%s\" lacks \"%s\"",                \
              weft_fs_errmsg(), (needle));                                     \
  } while (0)

/* ---- round trips ---- */

static int m_roundtrip(void *arg) {
  (void)arg;
  const char *p = path_in("a.txt");
  weft_file *f;
  T_OK(weft_file_open(&f, p, O_RDWR | O_CREAT | O_TRUNC, 0644));
  T_STREQ(weft_file_path(f), p);
  T_OK(weft_file_write(f, "hello ", 6));
  T_OK(weft_file_write(f, "world\n", 6));
  T_EQ(weft_file_tell(f), 12);
  T_OK(weft_file_pwrite(f, "W", 1, 6));
  T_OK(weft_file_fsync(f));
  struct stat st;
  T_OK(weft_file_stat(f, &st));
  T_EQ(st.st_size, 12);
  char buf[64] = {0};
  T_EQ(weft_file_pread(f, buf, sizeof buf, 0), 12);
  T_TRUE(memcmp(buf, "hello World\n", 12) == 0);
  T_EQ(weft_file_pread(f, buf, sizeof buf, 100), 0); /* past the end */
  weft_file_seek(f, 6);
  memset(buf, 0, sizeof buf);
  T_EQ(weft_file_read(f, buf, 5), 5);
  T_STREQ(buf, "World");
  T_EQ(weft_file_read(f, buf, sizeof buf), 1);
  T_EQ(weft_file_read(f, buf, sizeof buf), 0); /* end of file */
  T_OK(weft_file_close(f));

  T_OK(weft_fs_stat(p, &st));
  T_EQ(st.st_size, 12);
  T_OK(weft_fs_rename(p, path_in("b.txt")));
  T_RC(weft_fs_stat(p, &st), WEFT_ENOENT);
  T_OK(weft_fs_mkdir(path_in("sub"), 0755));
  T_RC(weft_fs_mkdir(path_in("sub"), 0755), WEFT_EEXIST);
  T_OK(weft_fs_rename(path_in("b.txt"), path_in("sub/c.txt")));
  weft_bytes b = {0};
  T_OK(weft_fs_read_file(path_in("sub/c.txt"), &b, 0));
  T_EQ(b.len, 12);
  T_TRUE(memcmp(b.data, "hello World\n", 12) == 0);
  weft_bytes_free(&b);
  T_OK(weft_fs_unlink(path_in("sub/c.txt")));
  T_OK(weft_fs_rmdir(path_in("sub")));

  /* Append mode writes at the end whatever the position. */
  T_OK(weft_fs_write_file(path_in("log"), "1\n", 2, 0));
  T_OK(weft_file_open(&f, path_in("log"), O_WRONLY | O_APPEND, 0));
  T_OK(weft_file_write(f, "2\n", 2));
  T_OK(weft_file_close(f));
  T_OK(weft_fs_read_file(path_in("log"), &b, 0));
  T_EQ(b.len, 4);
  T_TRUE(memcmp(b.data, "1\n2\n", 4) == 0);
  weft_bytes_free(&b);
  T_OK(weft_fs_unlink(path_in("log")));
  return 0;
}
static void test_roundtrip(void) { T_EQ(t_run(m_roundtrip, NULL), 0); }

/* Whole files, big and empty, and the size limit. */
static int m_whole(void *arg) {
  (void)arg;
  size_t n = 9 * 1024 * 1024 + 123; /* several 4 MiB chunks each way */
  uint8_t *data = malloc(n);
  for (size_t i = 0; i < n; i++)
    data[i] = (uint8_t)(i * 31 + (i >> 13));
  T_OK(weft_fs_write_file(path_in("big"), data, n, 0600));
  weft_bytes b = {0};
  T_OK(weft_fs_read_file(path_in("big"), &b, 0));
  T_EQ(b.len, n);
  T_TRUE(b.len == n && memcmp(b.data, data, n) == 0);
  weft_bytes_free(&b);
  T_RC(weft_fs_read_file(path_in("big"), &b, 1000), WEFT_EMSGSIZE);
  T_TRUE(b.data == NULL && b.len == 0);
  T_MSG_HAS(path_in("big"));
  T_OK(weft_fs_read_file(path_in("big"), &b, n)); /* exactly the limit */
  T_EQ(b.len, n);
  weft_bytes_free(&b);
  T_OK(weft_fs_write_file(path_in("empty"), "", 0, 0));
  T_OK(weft_fs_read_file(path_in("empty"), &b, 0));
  T_EQ(b.len, 0);
  weft_bytes_free(&b);
  T_OK(weft_fs_unlink(path_in("big")));
  T_OK(weft_fs_unlink(path_in("empty")));
  free(data);
  return 0;
}
static void test_whole(void) { T_EQ(t_run(m_whole, NULL), 0); }

/* ---- error paths, each naming the path ---- */

static int m_errors(void *arg) {
  (void)arg;
  weft_file *f = (weft_file *)1;
  const char *missing = path_in("no/such/file");
  T_RC(weft_file_open(&f, missing, O_RDONLY, 0), WEFT_ENOENT);
  T_TRUE(f == NULL);
  T_MSG_HAS("open");
  T_MSG_HAS(missing);
  T_MSG_HAS("no such file");
  weft_bytes b = {0};
  T_RC(weft_fs_read_file(missing, &b, 0), WEFT_ENOENT);
  T_MSG_HAS(missing);
  struct stat st;
  T_RC(weft_fs_stat(missing, &st), WEFT_ENOENT);
  T_MSG_HAS("stat");
  T_RC(weft_fs_unlink(missing), WEFT_ENOENT);
  T_MSG_HAS("unlink");
  T_RC(weft_fs_rename(missing, path_in("x")), WEFT_ENOENT);
  T_MSG_HAS(path_in("x"));

  /* A directory where a file was expected. */
  T_OK(weft_fs_mkdir(path_in("d"), 0));
  T_RC(weft_file_open(&f, path_in("d"), O_WRONLY, 0), WEFT_EISDIR);
  T_MSG_HAS(path_in("d"));
  T_RC(weft_fs_read_file(path_in("d"), &b, 0), WEFT_EISDIR);
  T_MSG_HAS("read");
  T_RC(weft_fs_unlink(path_in("d")), WEFT_EISDIR);
  T_OK(weft_fs_write_file(path_in("f"), "x", 1, 0));
  T_RC(weft_fs_rmdir(path_in("f")), WEFT_ENOTDIR);
  T_RC(weft_file_open(&f, path_in("f/inside"), O_RDONLY, 0), WEFT_ENOTDIR);
  T_OK(weft_fs_rmdir(path_in("d")));
  T_OK(weft_fs_unlink(path_in("f")));

  /* Reading a file opened for writing only. */
  T_OK(weft_file_open(&f, path_in("w"), O_WRONLY | O_CREAT, 0644));
  char c;
  T_RC(weft_file_read(f, &c, 1), WEFT_EBADF);
  T_MSG_HAS(path_in("w"));
  T_OK(weft_file_close(f));
  T_OK(weft_fs_unlink(path_in("w")));
  T_RC(weft_fs_stat(NULL, &st), WEFT_EINVAL);
  return 0;
}
static void test_errors(void) { T_EQ(t_run(m_errors, NULL), 0); }

static void test_notask(void) {
  struct stat st;
  T_RC(weft_fs_stat("/", &st), WEFT_ENOTASK);
  weft_file *f;
  T_RC(weft_file_open(&f, "/", O_RDONLY, 0), WEFT_ENOTASK);
}

/* Permission denied. Root reads anything, so as root the case runs in a
 * child process that first gives its root away. It runs first, before any
 * thread exists, so the fork is safe. */
static int m_eacces(void *arg) {
  (void)arg;
  const char *p = path_in("secret");
  weft_file *f;
  T_RC(weft_file_open(&f, p, O_RDONLY, 0), WEFT_EACCES);
  T_MSG_HAS(p);
  T_MSG_HAS("permission denied");
  weft_bytes b = {0};
  T_RC(weft_fs_read_file(p, &b, 0), WEFT_EACCES);
  T_RC(weft_fs_write_file(p, "x", 1, 0), WEFT_EACCES);
  return 0;
}

static void test_eacces(void) {
  const char *p = path_in("secret");
  int fd = open(p, O_WRONLY | O_CREAT, 0600);
  T_GE(fd, 0);
  close(fd);
  T_EQ(chmod(p, 0), 0);
  if (geteuid() != 0) {
    T_EQ(t_run(m_eacces, NULL), 0);
  } else {
    T_EQ(chmod(dir, 0755), 0);
    pid_t pid = fork();
    T_GE(pid, 0);
    if (pid == 0) {
      if (setgid(65534) != 0 || setuid(65534) != 0)
        _exit(3);
      int rc = t_run(m_eacces, NULL);
      _exit(rc == 0 && CU_get_number_of_failures() == 0 ? 0 : 1);
    }
    int status = 0;
    T_EQ(waitpid(pid, &status, 0), pid);
    T_TRUE(WIFEXITED(status));
    T_EQ(WEXITSTATUS(status), 0);
    T_EQ(chmod(dir, 0700), 0);
  }
  unlink(p);
}

/* ---- lines ---- */

static int m_lines(void *arg) {
  (void)arg;
  const char *text = "one\n\ntwo\r\n" /* an empty line, a CR kept */
                     "a line longer than sixteen bytes\n"
                     "three\n"
                     "last without newline";
  T_OK(weft_fs_write_file(path_in("lines"), text, strlen(text), 0));
  weft_file *f;
  T_OK(weft_file_open(&f, path_in("lines"), O_RDONLY, 0));
  weft_lines *r;
  T_OK(weft_lines_new(&r, f, 16));
  const char *line;
  size_t len;
  T_OK(weft_lines_next(r, &line, &len));
  T_TRUE(len == 3 && memcmp(line, "one", 3) == 0);
  T_OK(weft_lines_next(r, &line, &len));
  T_EQ(len, 0);
  T_OK(weft_lines_next(r, &line, &len));
  T_TRUE(len == 4 && memcmp(line, "two\r", 4) == 0);
  T_RC(weft_lines_next(r, &line, &len), WEFT_ELIMIT); /* skipped whole */
  T_OK(weft_lines_next(r, &line, &len));
  T_TRUE(len == 5 && memcmp(line, "three", 5) == 0);
  T_RC(weft_lines_next(r, &line, &len), WEFT_ELIMIT); /* 20 bytes, no \n */
  T_RC(weft_lines_next(r, &line, &len), WEFT_EOF);
  T_RC(weft_lines_next(r, &line, &len), WEFT_EOF);
  weft_lines_free(r);
  /* A bigger bound takes the last line, newline or not. */
  weft_file_seek(f, 0);
  T_OK(weft_lines_new(&r, f, 0));
  int n = 0;
  int rc;
  while ((rc = weft_lines_next(r, &line, &len)) == 0)
    n++;
  T_RC(rc, WEFT_EOF);
  T_EQ(n, 6);
  T_TRUE(len == 20 && memcmp(line, "last without newline", 20) == 0);
  weft_lines_free(r);
  T_OK(weft_file_close(f));
  T_OK(weft_fs_unlink(path_in("lines")));
  return 0;
}
static void test_lines(void) { T_EQ(t_run(m_lines, NULL), 0); }

/* A big file, line by line, through a 4 KiB reader: every line seen,
 * memory bounded by the reader's buffer. */
static int m_lines_big(void *arg) {
  (void)arg;
  int fd = open(path_in("big.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  T_GE(fd, 0);
  FILE *out = fdopen(fd, "w");
  long want_sum = 0;
  for (long i = 0; i < 300000; i++) {
    fprintf(out, "%ld %s\n", i, i % 1000 == 0 ? "a somewhat longer line" : "");
    want_sum += i;
  }
  fclose(out);
  weft_file *f;
  T_OK(weft_file_open(&f, path_in("big.txt"), O_RDONLY, 0));
  weft_lines *r;
  T_OK(weft_lines_new(&r, f, 4096));
  const char *line;
  size_t len;
  long n = 0, sum = 0;
  int rc;
  while ((rc = weft_lines_next(r, &line, &len)) == 0) {
    T_LT(len, 4096);
    sum += strtol(line, NULL, 10);
    n++;
  }
  T_RC(rc, WEFT_EOF);
  T_EQ(n, 300000);
  T_EQ(sum, want_sum);
  weft_lines_free(r);
  T_OK(weft_file_close(f));
  T_OK(weft_fs_unlink(path_in("big.txt")));
  return 0;
}
static void test_lines_big(void) { T_EQ(t_run(m_lines_big, NULL), 0); }

/* ---- cancellation ---- */

typedef struct gate {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool open;
  atomic_int arrived;
} gate;

static intptr_t gated(void *arg) {
  gate *g = arg;
  atomic_fetch_add(&g->arrived, 1);
  pthread_mutex_lock(&g->mu);
  while (!g->open)
    pthread_cond_wait(&g->cv, &g->mu);
  pthread_mutex_unlock(&g->mu);
  return 0;
}

static int blocker(void *arg) {
  weft_thread_opts o = {.size = sizeof o,
                        .pool = weft_threadpool_default(WEFT_POOL_FS)};
  return weft_to_thread_opts(gated, arg, NULL, &o);
}

typedef struct reader_arg {
  weft_file *f;
  char buf[16];
  int64_t rc;
} reader_arg;

static int reader(void *arg) {
  reader_arg *a = arg;
  a->rc = weft_file_read(a->f, a->buf, sizeof a->buf);
  return 0;
}

/* Every fs worker is stuck, so a read queues; cancelling it removes it:
 * the buffer is untouched and the position unchanged, and the next read
 * gets the same bytes. */
static int m_cancel(void *arg) {
  (void)arg;
  T_OK(weft_fs_write_file(path_in("c"), "0123456789", 10, 0));
  weft_file *f;
  T_OK(weft_file_open(&f, path_in("c"), O_RDONLY, 0));
  weft_threadpool_stats st;
  weft_threadpool_stats_get(weft_threadpool_default(WEFT_POOL_FS), &st);
  gate g = {.open = false};
  pthread_mutex_init(&g.mu, NULL);
  pthread_cond_init(&g.cv, NULL);
  size_t nb = st.threads_max;
  weft_task *b[64];
  T_LE(nb, 64);
  for (size_t i = 0; i < nb; i++)
    T_OK(weft_spawn(&b[i], blocker, &g));
  for (int i = 0; i < 5000 && atomic_load(&g.arrived) < (int)nb; i++)
    T_OK(weft_sleep(0.001));
  T_EQ(atomic_load(&g.arrived), (int)nb);
  reader_arg a = {.f = f};
  memset(a.buf, 'x', sizeof a.buf);
  weft_task *t;
  T_OK(weft_spawn(&t, reader, &a));
  T_OK(weft_sleep(0.01));
  weft_cancel(t);
  T_OK(weft_join(t, NULL));
  T_RC(a.rc, WEFT_ECANCELED);
  T_EQ(weft_file_tell(f), 0);
  pthread_mutex_lock(&g.mu);
  g.open = true;
  pthread_cond_broadcast(&g.cv);
  pthread_mutex_unlock(&g.mu);
  for (size_t i = 0; i < nb; i++)
    T_OK(weft_join(b[i], NULL));
  T_EQ(a.buf[0], 'x'); /* never written */
  char buf[16];
  T_EQ(weft_file_read(f, buf, sizeof buf), 10);
  T_TRUE(memcmp(buf, "0123456789", 10) == 0);
  /* Deadlines apply too; a read that runs meanwhile never writes into the
   * caller's buffer afterwards (it reads into its own). */
  weft_timeout scope;
  weft_timeout_enter(&scope, 0);
  T_RC(weft_file_pread(f, a.buf, sizeof a.buf, 0), WEFT_ETIMEDOUT);
  T_RC(weft_timeout_exit(&scope), WEFT_ETIMEDOUT);
  T_OK(weft_file_close(f));
  T_OK(weft_fs_unlink(path_in("c")));
  T_OK(weft_sleep(0.01));
  T_EQ(a.buf[0], 'x');
  pthread_mutex_destroy(&g.mu);
  pthread_cond_destroy(&g.cv);
  return 0;
}
static void test_cancel(void) { T_EQ(t_run(m_cancel, NULL), 0); }

/* Closing while a cancelled op may still run keeps the descriptor until the
 * op is done; a cancelled close still closes. */
static int m_close_cancelled(void *arg) {
  (void)arg;
  weft_file *f;
  T_OK(weft_fs_write_file(path_in("cc"), "abc", 3, 0));
  T_OK(weft_file_open(&f, path_in("cc"), O_RDONLY, 0));
  weft_cancel(weft_current());
  T_RC(weft_file_close(f), WEFT_ECANCELED); /* f is gone all the same */
  return 0;
}

static int m_close_cancelled_check(void *arg) {
  (void)arg;
  T_OK(weft_fs_unlink(path_in("cc")));
  return 0;
}

static void test_close_cancelled(void) {
  /* Count open descriptors before and after. */
  int before = 0, after = 0;
  for (int fd = 0; fd < 1024; fd++)
    if (fcntl(fd, F_GETFD) >= 0)
      before++;
  T_EQ(t_run(m_close_cancelled, NULL), 0);
  T_EQ(t_run(m_close_cancelled_check, NULL), 0);
  for (int fd = 0; fd < 1024; fd++)
    if (fcntl(fd, F_GETFD) >= 0)
      after++;
  T_EQ(after, before);
}

static const t_case cases[] = {
    {"eacces", test_eacces}, /* first: it may fork */
    {"roundtrip", test_roundtrip},
    {"whole", test_whole},
    {"errors", test_errors},
    {"notask", test_notask},
    {"lines", test_lines},
    {"lines_big", test_lines_big},
    {"cancel", test_cancel},
    {"close_cancelled", test_close_cancelled},
    {NULL, NULL},
};

int main(void) {
  snprintf(dir, sizeof dir, "%s/weft-fs-XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (mkdtemp(dir) == NULL) {
    perror("mkdtemp");
    return 2;
  }
  int rc = t_main("offload-fs", cases);
  rmdir(dir);
  return rc;
}
