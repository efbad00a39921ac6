/* weft-tour — what `make demo` runs: every scenario app in turn, with small
 * settings, and one table of the asyncio guide's claims beside what weft
 * measured.
 *
 * Each scenario app is a program of its own (weft-NAME, in the same
 * directory as this one). The tour runs it with --tour and collects the rows
 * it prints (apps/common/app.h has the format), so a new scenario joins the
 * tour with one line in the table below.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "app.h"

extern char **environ;

/* The scenarios, in the order of the asyncio guide. */
static const struct scenario {
  const char *app;   /* runs weft-<app> --tour */
  const char *about; /* the guide's section */
} scenarios[] = {
    {"basics", "coroutines, await, gather, create_task, wait_for"},
    {"queue", "producer/consumer over a bounded queue"},
    {"echo", "streams: a TCP/TLS echo server and its clients"},
    {"resolve", "DNS: many names at once, cache, errors, timeouts"},
    {"offload", "CPU-bound work: the loop, threads, a process pool"},
    {"files", "async file I/O (aiofiles) while other tasks run"},
    {"hello", "an HTTP server (aiohttp.web): HTTP/1.1 and HTTP/2"},
    {"fetch", "an HTTP client (aiohttp.ClientSession): many URLs at once"},
};
#define NSCEN (sizeof scenarios / sizeof scenarios[0])

/* A scenario must finish in this time or it is killed and counted failed. */
#define SCENARIO_TIMEOUT_S 120

enum verdict { OK, FAIL, SLOW };

typedef struct row {
  const char *app;
  char *claim, *measured;
  enum verdict v;
} row;

static row *rows;
static size_t nrows, rows_cap;
static bool verbose;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void add_row(const char *app, const char *claim, const char *measured,
                    enum verdict v) {
  if (nrows == rows_cap) {
    rows_cap = rows_cap ? rows_cap * 2 : 32;
    rows = realloc(rows, rows_cap * sizeof *rows);
    if (rows == NULL) {
      perror("weft-tour");
      exit(1);
    }
  }
  char *c = strdup(claim), *m = strdup(measured);
  if (c == NULL || m == NULL) {
    perror("weft-tour");
    exit(1);
  }
  rows[nrows++] = (row){app, c, m, v};
}

/* Parses one line of a scenario's output: a row, or text for people. */
static void take_line(const char *app, char *line) {
  if (strncmp(line, "TOUR\t", 5) != 0) {
    if (verbose)
      printf("  | %s\n", line);
    return;
  }
  char *f[3]; /* claim, measured, verdict */
  char *p = line + 5;
  for (int i = 0; i < 2; i++) {
    f[i] = p;
    p = strchr(p, '\t');
    if (p == NULL) {
      add_row(app, "(malformed tour row)", line + 5, FAIL);
      return;
    }
    *p++ = '\0';
  }
  f[2] = p;
  enum verdict v = strcmp(f[2], "ok") == 0     ? OK
                   : strcmp(f[2], "slow") == 0 ? SLOW
                                               : FAIL;
  add_row(app, f[0], f[1], v);
}

/* Runs weft-<app> --tour from `dir`, collecting its rows. Returns false when
 * it could not run, timed out or exited non-zero. */
static bool run_scenario(const char *dir, const struct scenario *s,
                         double *took) {
  char path[PATH_MAX + 64];
  snprintf(path, sizeof path, "%s/weft-%s", dir, s->app);
  if (access(path, X_OK) != 0) {
    add_row(s->app, s->about, "(not built)", OK);
    return true;
  }
  int fds[2];
  if (pipe(fds) != 0) {
    perror("weft-tour: pipe");
    return false;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  posix_spawn_file_actions_addclose(&fa, fds[1]);
  char *argv[] = {path, "--tour", NULL};
  pid_t pid;
  double t0 = now_s();
  int err = posix_spawn(&pid, path, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (err != 0) {
    fprintf(stderr, "weft-tour: cannot run %s: %s\n", path, strerror(err));
    close(fds[0]);
    return false;
  }

  char buf[8192];
  size_t len = 0;
  bool timed_out = false;
  for (;;) {
    int left = (int)((t0 + SCENARIO_TIMEOUT_S - now_s()) * 1000);
    struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
    if (left <= 0 || poll(&pfd, 1, left) == 0) {
      timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    ssize_t n = read(fds[0], buf + len, sizeof buf - 1 - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    len += (size_t)n;
    buf[len] = '\0';
    char *nl;
    while ((nl = memchr(buf, '\n', len)) != NULL) {
      *nl = '\0';
      take_line(s->app, buf);
      len -= (size_t)(nl + 1 - buf);
      memmove(buf, nl + 1, len);
    }
    if (len == sizeof buf - 1) { /* an absurdly long line: drop it */
      len = 0;
    }
  }
  close(fds[0]);
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  *took = now_s() - t0;
  if (timed_out) {
    add_row(s->app, "(the scenario finishes in time)", "killed after timeout",
            FAIL);
    return false;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    char what[64];
    if (WIFSIGNALED(status))
      snprintf(what, sizeof what, "killed by signal %d", WTERMSIG(status));
    else
      snprintf(what, sizeof what, "exited with status %d", WEXITSTATUS(status));
    add_row(s->app, "(the scenario runs to the end)", what, FAIL);
    return false;
  }
  return true;
}

static int width(size_t i, size_t col) {
  const char *s = col == 0   ? rows[i].app
                  : col == 1 ? rows[i].claim
                             : rows[i].measured;
  return (int)strlen(s);
}

static void usage(const char *prog) {
  printf("usage: %s [-v] [--only NAME] [--list]\n"
         "  Runs every weft scenario app with small settings and prints the\n"
         "  asyncio guide's claims beside what weft measured.\n"
         "  -v           also show what each scenario prints\n"
         "  --only NAME  run one scenario (see --list)\n"
         "  --list       list the scenarios\n",
         prog);
}

int main(int argc, char **argv) {
  const char *only = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(argv[0]);
      return 0;
    } else if (strcmp(argv[i], "-v") == 0) {
      verbose = true;
    } else if (strcmp(argv[i], "--list") == 0) {
      for (size_t k = 0; k < NSCEN; k++)
        printf("%-10s %s\n", scenarios[k].app, scenarios[k].about);
      return 0;
    } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
      only = argv[++i];
    } else {
      app_bad_arg(argv[0], argv[i]);
    }
  }

  /* The scenario programs sit next to this one (build/apps/ or bin/). */
  char dir[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
  if (n <= 0) {
    perror("weft-tour: /proc/self/exe");
    return 1;
  }
  dir[n] = '\0';
  char *slash = strrchr(dir, '/');
  if (slash != NULL)
    *slash = '\0';

  printf("weft tour: the asyncio guide's claims, measured\n\n");
  size_t ran = 0, failed_apps = 0;
  for (size_t k = 0; k < NSCEN; k++) {
    if (only != NULL && strcmp(only, scenarios[k].app) != 0)
      continue;
    printf("running weft-%s (%s) ...", scenarios[k].app, scenarios[k].about);
    fflush(stdout);
    double took = 0;
    bool ok = run_scenario(dir, &scenarios[k], &took);
    printf(" %s, %.1f s\n", ok ? "done" : "FAILED", took);
    failed_apps += !ok;
    ran++;
  }
  if (ran == 0) {
    fprintf(stderr, "weft-tour: no scenario named '%s' (try --list)\n", only);
    return 2;
  }

  int w[3] = {8, 5, 8};
  for (size_t i = 0; i < nrows; i++)
    for (size_t c = 0; c < 3; c++)
      if (width(i, c) > w[c])
        w[c] = width(i, c);
  printf("\n%-*s  %-*s  %-*s  %s\n", w[0], "scenario", w[1], "claim", w[2],
         "measured", "");
  size_t failed_rows = 0, slow_rows = 0;
  static const char *const verdicts[] = {"ok", "FAIL", "SLOW"};
  for (size_t i = 0; i < nrows; i++) {
    printf("%-*s  %-*s  %-*s  %s\n", w[0], rows[i].app, w[1], rows[i].claim,
           w[2], rows[i].measured, verdicts[rows[i].v]);
    failed_rows += rows[i].v == FAIL;
    slow_rows += rows[i].v == SLOW;
  }
  if (failed_rows == 0 && failed_apps == 0)
    printf("\nall %zu claims held", nrows - slow_rows);
  else
    printf("\n%zu of %zu claims did not hold", failed_rows, nrows);
  if (slow_rows > 0)
    printf("; %zu claims about speed fell short (SLOW: is the machine busy? "
           "docs/benchmarks.md measures speed properly)",
           slow_rows);
  printf("\n");
  for (size_t i = 0; i < nrows; i++) {
    free(rows[i].claim);
    free(rows[i].measured);
  }
  free(rows);
  return failed_rows == 0 && failed_apps == 0 ? 0 : 1;
}
