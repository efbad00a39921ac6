/* weft tests — helpers shared by the stream, TLS, UDP and DNS suites:
 * listeners on loopback port 0, accepting into streams, child processes
 * (openssl s_server / s_client) started and always stopped, temporary
 * directories, counting open file descriptors to catch leaks, and a loop
 * kept busy by streams. */
#ifndef WEFT_TEST_STREAM_UTIL_H
#define WEFT_TEST_STREAM_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <weft/addr.h>
#include <weft/stream.h>

#include "stream_int.h"
#include "test.h"

extern char **environ;

#define RUN(fn) T_EQ(t_run((fn), NULL), 0)

/* A connected pair of Unix stream sockets, as weft streams. */
static inline void unix_pair(weft_stream **a, weft_stream **b) {
  int sv[2];
  T_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  T_OK(weft_stream_from_fd(a, sv[0], NULL));
  T_OK(weft_stream_from_fd(b, sv[1], NULL));
}

/* Sends a byte and waits for it back, until cancelled. */
static inline int m_ping(void *arg) {
  weft_stream *s = arg;
  char b = 'x';
  for (;;) {
    int rc = weft_stream_write(s, &b, 1);
    if (rc == 0)
      rc = weft_stream_read_exactly(s, &b, 1);
    if (rc != 0)
      return rc == WEFT_ECANCELED ? 0 : rc;
  }
}

/* Sends back every byte it gets, until cancelled. */
static inline int m_pong(void *arg) {
  weft_stream *s = arg;
  char b;
  for (;;) {
    int rc = weft_stream_read_exactly(s, &b, 1);
    if (rc == 0)
      rc = weft_stream_write(s, &b, 1);
    if (rc != 0)
      return rc == WEFT_ECANCELED ? 0 : rc;
  }
}

/* BUSY_PAIRS stream pairs ping-ponging bytes: several of the loop's own
 * set ready every turn, so a busy loop polls that set alone. */
#define BUSY_PAIRS 8
typedef struct busy {
  weft_stream *st[BUSY_PAIRS][2];
  weft_task *t[BUSY_PAIRS][2];
} busy;

static inline void busy_start(busy *b) {
  for (int i = 0; i < BUSY_PAIRS; i++) {
    unix_pair(&b->st[i][0], &b->st[i][1]);
    T_OK(weft_spawn(&b->t[i][0], m_ping, b->st[i][0]));
    T_OK(weft_spawn(&b->t[i][1], m_pong, b->st[i][1]));
  }
  T_OK(weft_sleep(0.01)); /* the ping-pongs are under way */
}

static inline void busy_stop(busy *b) {
  for (int i = 0; i < BUSY_PAIRS; i++)
    for (int j = 0; j < 2; j++) {
      int r = -1;
      weft_cancel(b->t[i][j]);
      T_OK(weft_join(b->t[i][j], &r));
      T_EQ(r, 0);
    }
  for (int i = 0; i < BUSY_PAIRS; i++) {
    weft_stream_free(b->st[i][0]);
    weft_stream_free(b->st[i][1]);
  }
}

/* The loop's turn count (weft_loop_stats), for tests that bound how many
 * turns of a busy loop something takes. */
static inline uint64_t loop_turn(void) {
  weft_stats st;
  weft_loop_stats(weft_loop_current(), &st);
  return st.loop_iterations;
}

/* A listening TCP socket on ip, port 0; *addr gets the port the kernel
 * chose. Returns the fd, or -1 (failing the test). */
static inline int t_listen(const char *ip, int backlog, weft_addr *addr) {
  weft_addr a;
  T_OK(weft_addr_ip(&a, ip, 0));
  int fd =
      socket(a.u.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  T_GE(fd, 0);
  int one = 1;
  (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  T_EQ(bind(fd, &a.u.sa, a.len), 0);
  T_EQ(listen(fd, backlog), 0);
  socklen_t len = sizeof addr->u;
  memset(addr, 0, sizeof *addr);
  T_EQ(getsockname(fd, &addr->u.sa, &len), 0);
  addr->len = len;
  return fd;
}

/* Accepts one connection (waiting in the loop) and wraps it in a stream. */
static inline int t_accept(int lfd, weft_stream **out,
                           const weft_stream_opts *opts) {
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      int rc = weft_stream_from_fd(out, fd, opts);
      if (rc != 0)
        close(fd);
      return rc;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return -errno;
    int rc = weft__wait_fd(lfd, EV_READ);
    if (rc != 0)
      return rc;
  }
}

/* Open file descriptors of the process (to check nothing leaks). */
static inline int t_count_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL)
    return -1;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n - 1; /* the directory's own fd */
}

/* A child process with its stdin / stdout on pipes (non-blocking ends in
 * the parent). */
typedef struct t_proc {
  pid_t pid;
  int in;  /* we write its stdin */
  int out; /* we read its stdout */
} t_proc;

/* Starts argv[0] (found on PATH) with stdin and stdout on pipes; stderr is
 * left to the test's own, unless `quiet_err`, which sends it to
 * /dev/null. */
static inline int t_spawn(t_proc *p, char *const argv[], bool quiet_err) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0)
    return -errno;
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in[0]);
    close(in[1]);
    return -errno;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  if (quiet_err)
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  int rc = posix_spawnp(&p->pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  close(out[1]);
  if (rc != 0) {
    close(in[1]);
    close(out[0]);
    return -rc;
  }
  p->in = in[1];
  p->out = out[0];
  fcntl(p->out, F_SETFL, O_NONBLOCK);
  return 0;
}

/* Reads the child's stdout until `want` shows up in it followed by the end
 * of its line (or the output ends, or `seconds` pass), keeping what came in
 * buf (NUL-terminated). Waits in the loop. Returns 0 when found. */
static inline int t_proc_expect(t_proc *p, const char *want, char *buf,
                                size_t cap, double seconds) {
  size_t len = 0;
  buf[0] = '\0';
  weft_timeout scope;
  weft_timeout_enter(&scope, seconds);
  int rc = WEFT_EOF;
  for (;;) {
    const char *f = strstr(buf, want);
    if (f != NULL && strchr(f, '\n') != NULL) {
      rc = 0;
      break;
    }
    if (len + 1 >= cap) {
      rc = WEFT_ELIMIT;
      break;
    }
    ssize_t n = read(p->out, buf + len, cap - 1 - len);
    if (n > 0) {
      len += (size_t)n;
      buf[len] = '\0';
      continue;
    }
    if (n == 0)
      break;
    if (errno != EAGAIN) {
      rc = -errno;
      break;
    }
    rc = weft__wait_fd(p->out, EV_READ);
    if (rc != 0)
      break;
  }
  (void)weft_timeout_exit(&scope);
  return rc;
}

/* Waits (in the loop, polling) up to `seconds` for the child to exit; then
 * kills it. Returns its exit status, or -1 when it had to be killed. Closes
 * the pipes. */
static inline int t_proc_wait(t_proc *p, double seconds) {
  if (p->in >= 0)
    close(p->in);
  p->in = -1;
  int status = 0;
  double end = weft_now() + seconds;
  pid_t r;
  while ((r = waitpid(p->pid, &status, WNOHANG)) == 0 && weft_now() < end)
    (void)weft_sleep(0.01);
  int rc;
  if (r == p->pid) {
    rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  } else {
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &status, 0);
    rc = -1;
  }
  if (p->out >= 0)
    close(p->out);
  p->out = -1;
  return rc;
}

/* Stops the child now (SIGTERM, then SIGKILL) and closes the pipes. */
static inline void t_proc_kill(t_proc *p) {
  kill(p->pid, SIGTERM);
  int status;
  for (int i = 0; i < 200; i++) {
    if (waitpid(p->pid, &status, WNOHANG) == p->pid)
      goto done;
    usleep(5000);
  }
  kill(p->pid, SIGKILL);
  waitpid(p->pid, &status, 0);
done:
  if (p->in >= 0)
    close(p->in);
  if (p->out >= 0)
    close(p->out);
  p->in = p->out = -1;
}

/* A fresh temporary directory (path in buf). */
static inline int t_tmpdir(char *buf, size_t cap, const char *tag) {
  const char *base = getenv("TMPDIR");
  snprintf(buf, cap, "%s/weft-%s-XXXXXX", base ? base : "/tmp", tag);
  return mkdtemp(buf) ? 0 : -errno;
}

static inline int t_rm_one(const char *path, const struct stat *st, int flag,
                           struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

/* Removes a directory tree. */
static inline void t_rmtree(const char *dir) {
  nftw(dir, t_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
