/* weft-files — async file I/O (aiofiles) while other tasks run.
 *
 * Makes a large text file (or takes yours), copies it with weft_file_read /
 * weft_file_write in 1 MiB pieces, and counts its lines with a line reader
 * whose memory is bounded by its 64 KiB buffer, whatever the file's size.
 * Every system call runs on the file-I/O thread pool, so a heartbeat task
 * that asks to wake every 10 ms keeps ticking the whole time. It ends by
 * showing what an error looks like: a WEFT_E* code and a message naming the
 * path.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <weft/fs.h>
#include <weft/thread.h>
#include <weft/weft.h>

#include "app.h"

static struct {
  const char *file; /* NULL: make one */
  const char *dir;
  double size_mb;
  bool keep;
  bool tour;
} cfg = {NULL, NULL, 256, false, false};

#define CHUNK ((size_t)1 << 20)
#define LINE_MAX_BYTES ((size_t)64 << 10)

static app_heartbeat hb;

/* FNV-1a over the bytes, to compare the copy with the original. */
static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}
#define FNV0 0xcbf29ce484222325ull

static void fail_io(const char *what, int rc) {
  fprintf(stderr, "weft-files: %s: %s (%s)\n", what, weft_fs_errmsg(),
          weft_err_name(rc));
}

/* Writes a text file of about `bytes` bytes; returns its line count. */
static int make_file(const char *path, size_t bytes, long *lines) {
  weft_file *f;
  int rc = weft_file_open(&f, path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (rc != 0)
    return rc;
  char *buf = malloc(CHUNK + 256);
  size_t written = 0;
  long n = 0;
  while (rc == 0 && written < bytes) {
    size_t len = 0;
    while (len < CHUNK && written + len < bytes) {
      len += (size_t)snprintf(buf + len, 256,
                              "%ld the quick brown fox jumps over the lazy "
                              "dog %s\n",
                              n, n % 97 == 0 ? "and then some" : "");
      n++;
    }
    rc = weft_file_write(f, buf, len);
    written += len;
  }
  free(buf);
  int crc = weft_file_close(f);
  *lines = n;
  return rc ? rc : crc;
}

static int copy_file(const char *from, const char *to, uint64_t *sum,
                     uint64_t *bytes) {
  weft_file *in, *out;
  int rc = weft_file_open(&in, from, O_RDONLY, 0);
  if (rc != 0)
    return rc;
  rc = weft_file_open(&out, to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (rc != 0) {
    (void)weft_file_close(in);
    return rc;
  }
  uint8_t *buf = malloc(CHUNK);
  *sum = FNV0;
  *bytes = 0;
  for (;;) {
    int64_t n = weft_file_read(in, buf, CHUNK);
    if (n <= 0) {
      rc = (int)n;
      break;
    }
    *sum = fnv(*sum, buf, (size_t)n);
    *bytes += (uint64_t)n;
    if ((rc = weft_file_write(out, buf, (size_t)n)) != 0)
      break;
  }
  free(buf);
  if (rc == 0)
    rc = weft_file_fsync(out);
  int c1 = weft_file_close(in), c2 = weft_file_close(out);
  return rc ? rc : c1 ? c1 : c2;
}

/* Counts lines (and sums the bytes of the copy, newlines put back). */
static int count_lines(const char *path, long *lines, uint64_t *sum) {
  weft_file *f;
  int rc = weft_file_open(&f, path, O_RDONLY, 0);
  if (rc != 0)
    return rc;
  weft_lines *r;
  rc = weft_lines_new(&r, f, LINE_MAX_BYTES);
  if (rc != 0) {
    (void)weft_file_close(f);
    return rc;
  }
  const char *line;
  size_t len;
  *lines = 0;
  *sum = FNV0;
  while ((rc = weft_lines_next(r, &line, &len)) == 0) {
    (*lines)++;
    *sum = fnv(*sum, (const uint8_t *)line, len);
    *sum = fnv(*sum, (const uint8_t *)"\n", 1);
  }
  if (rc == WEFT_EOF)
    rc = 0;
  weft_lines_free(r);
  int crc = weft_file_close(f);
  return rc ? rc : crc;
}

static int run_main(void *arg) {
  (void)arg;
  char dir[512], src[600], dst[600];
  if (cfg.dir != NULL)
    snprintf(dir, sizeof dir, "%s", cfg.dir);
  else
    snprintf(dir, sizeof dir, "%s",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  snprintf(dst, sizeof dst, "%s/weft-files-copy.%d", dir, (int)getpid());
  weft_task *hbt;
  int rc = weft_spawn(&hbt, app_heartbeat_task, &hb);
  if (rc != 0)
    return rc;

  long made_lines = -1;
  double t0 = weft_now();
  if (cfg.file != NULL) {
    snprintf(src, sizeof src, "%s", cfg.file);
  } else {
    snprintf(src, sizeof src, "%s/weft-files-src.%d", dir, (int)getpid());
    rc = make_file(src, (size_t)(cfg.size_mb * 1048576), &made_lines);
    if (rc != 0) {
      fail_io("making the input", rc);
      goto out;
    }
    printf("made %s: %.0f MiB, %ld lines, in %.2f s\n", src, cfg.size_mb,
           made_lines, weft_now() - t0);
  }
  hb.worst = 0;
  hb.ticks = 0;
  t0 = weft_now();
  uint64_t sum_copy, bytes;
  rc = copy_file(src, dst, &sum_copy, &bytes);
  double t_copy = weft_now() - t0;
  if (rc != 0) {
    fail_io("copying", rc);
    goto out;
  }
  double worst_copy = hb.worst;
  long ticks_copy = hb.ticks;
  printf("copied %.1f MiB in %.2f s (%.0f MiB/s); heartbeat %ld ticks, at "
         "most %.1f ms late\n",
         (double)bytes / 1048576, t_copy, (double)bytes / 1048576 / t_copy,
         ticks_copy, worst_copy * 1e3);

  hb.worst = 0;
  hb.ticks = 0;
  t0 = weft_now();
  long lines;
  uint64_t sum_lines;
  rc = count_lines(dst, &lines, &sum_lines);
  double t_lines = weft_now() - t0;
  if (rc != 0) {
    fail_io("counting lines", rc);
    goto out;
  }
  printf("counted %ld lines of the copy in %.2f s with a %zu KiB reader; "
         "heartbeat %ld ticks, at most %.1f ms late\n",
         lines, t_lines, LINE_MAX_BYTES >> 10, hb.ticks, hb.worst * 1e3);

  /* What an error looks like. */
  char missing[700];
  snprintf(missing, sizeof missing, "%s/no-such-dir/file", dir);
  weft_file *f;
  int erc = weft_file_open(&f, missing, O_RDONLY, 0);
  char msg[600];
  snprintf(msg, sizeof msg, "%s", weft_fs_errmsg());
  printf("opening a missing file: %s: %s\n", weft_err_name(erc), msg);

  if (cfg.tour) {
    bool ok = true;
    double worst = worst_copy > hb.worst ? worst_copy : hb.worst;
    ok &= app_row("file I/O on the thread pool never blocks the loop",
                  worst < 0.05 && ticks_copy > 0 && hb.ticks > 0,
                  "heartbeat at most %.1f ms late while %.0f MiB were copied "
                  "and read",
                  worst * 1e3, (double)bytes / 1048576);
    ok &= app_row("an async copy is byte-for-byte the original",
                  sum_copy == sum_lines || (cfg.file != NULL && bytes == 0),
                  "%.1f MiB at %.0f MiB/s, checksums %s",
                  (double)bytes / 1048576, (double)bytes / 1048576 / t_copy,
                  sum_copy == sum_lines ? "equal" : "differ");
    ok &= app_row("big files read line by line in bounded memory",
                  made_lines < 0 || lines == made_lines,
                  "%ld lines of %.0f MiB through a %zu KiB buffer", lines,
                  (double)bytes / 1048576, LINE_MAX_BYTES >> 10);
    ok &= app_row("file errors are WEFT_E* codes naming the path",
                  erc == WEFT_ENOENT && strstr(msg, missing) != NULL, "%s: %s",
                  weft_err_name(erc), msg);
    if (!ok)
      rc = 1;
  }

out:
  if (!cfg.keep) {
    (void)weft_fs_unlink(dst);
    if (cfg.file == NULL)
      (void)weft_fs_unlink(src);
  }
  weft_cancel(hbt);
  int jrc = weft_join(hbt, NULL); /* the heartbeat returns 0 */
  (void)jrc;
  return rc;
}

static void usage(const char *prog) {
  printf("usage: %s [--file PATH] [--size MIB] [--dir DIR] [--keep] "
         "[--tour]\n"
         "\n"
         "Copies a large file and counts its lines with weft's async file "
         "I/O\n"
         "while a heartbeat task ticks every 10 ms.\n"
         "\n"
         "  --file PATH   the file to copy (default: make one)\n"
         "  --size MIB    size of the file made (default %.0f)\n"
         "  --dir DIR     where the files go (default $TMPDIR or /tmp)\n"
         "  --keep        keep the files made\n"
         "  --tour        small settings; print the tour's claim rows\n",
         prog, cfg.size_mb);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--tour") == 0) {
      cfg.tour = true;
      cfg.size_mb = 32;
    }
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(argv[0]);
      return 0;
    } else if (strcmp(argv[i], "--file") == 0 && i + 1 < argc) {
      cfg.file = argv[++i];
    } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
      cfg.dir = argv[++i];
    } else if (strcmp(argv[i], "--size") == 0) {
      cfg.size_mb = app_num(argc, argv, &i, 0.001, 1 << 20);
    } else if (strcmp(argv[i], "--keep") == 0) {
      cfg.keep = true;
    } else if (strcmp(argv[i], "--tour") == 0) {
      /* taken above */
    } else {
      app_bad_arg(argv[0], argv[i]);
    }
  }
  int rc = weft_run(run_main, NULL);
  if (rc < 0) {
    fprintf(stderr, "%s: %s\n", argv[0], weft_strerror(rc));
    return 1;
  }
  return rc;
}
