/* weft — asynchronous file I/O (aiofiles): every call runs its system call on
 * the process-wide WEFT_POOL_FS thread pool (weft/thread.h), so the loop never
 * blocks on a disk, and suspends only the calling task.
 *
 * Every call here may suspend, must be called from a task, honours
 * cancellation and deadlines, and returns 0 (or a count) or a negative
 * WEFT_E* code: the system's errno negated (WEFT_ENOENT, WEFT_EACCES,
 * WEFT_EISDIR, ...), WEFT_ECANCELED, WEFT_ETIMEDOUT, WEFT_ENOMEM,
 * WEFT_ENOTASK. After a failure, weft_fs_errmsg() names the operation and the
 * path: "open '/etc/shadow': permission denied".
 *
 * What a cancellation leaves behind: the call returns at once, never waiting
 * for a busy worker. If the system call had not started it never runs. If it
 * had, it runs to the end on its worker and its result is dropped: a read
 * never writes into the caller's buffer after the call returned (it reads
 * into a buffer of its own), a write may or may not have reached the file,
 * an open's descriptor is closed, a rename/unlink/mkdir may have happened.
 * A file's descriptor stays open until every operation on it has finished,
 * so a cancelled operation can never touch a descriptor number reused by a
 * later open.
 */
#ifndef WEFT_FS_H
#define WEFT_FS_H

#include <sys/stat.h>
#include <sys/types.h>
#include <weft/bytes.h>
#include <weft/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_file weft_file;

/* Describes the last failure of a weft_fs_ or weft_file_ call on this
 * thread: the operation, the path and the error. Read it right after the
 * failing call (before the task suspends again). Static per thread; "" when
 * nothing failed yet. */
WEFT_EXTERN const char *weft_fs_errmsg(void);

/* Opens `path` with open(2) flags and mode (O_CLOEXEC is always added).
 * Returns 0 with *out set; the caller frees it with weft_file_close(). */
WEFT_EXTERN WEFT_NODISCARD int weft_file_open(weft_file **out, const char *path,
                                              int flags, int mode);

/* Closes the file and frees *f, even when it fails or is cancelled (the
 * descriptor is then closed by the worker or the last pending operation).
 * Returns 0 or close(2)'s error. NULL ok. */
WEFT_EXTERN int weft_file_close(weft_file *f);

/* Reads up to `len` bytes at the file's position into buf and advances it.
 * Returns the count (0 at end of file). A read returns at most 4 MiB. */
WEFT_EXTERN WEFT_NODISCARD int64_t weft_file_read(weft_file *f, void *buf,
                                                  size_t len);
/* Reads up to `len` bytes at `offset`; the position is unchanged. Returns
 * the count (0 past the end). At most 4 MiB per call. */
WEFT_EXTERN WEFT_NODISCARD int64_t weft_file_pread(weft_file *f, void *buf,
                                                   size_t len, int64_t offset);
/* Writes all of buf at the file's position (at the end with O_APPEND) and
 * advances it. Returns 0, or an error; a cancelled or failed write may have
 * written a prefix. */
WEFT_EXTERN WEFT_NODISCARD int weft_file_write(weft_file *f, const void *buf,
                                               size_t len);
/* Writes all of buf at `offset`; the position is unchanged. As write. */
WEFT_EXTERN WEFT_NODISCARD int weft_file_pwrite(weft_file *f, const void *buf,
                                                size_t len, int64_t offset);
/* fsync(2). */
WEFT_EXTERN WEFT_NODISCARD int weft_file_fsync(weft_file *f);
/* fstat(2) into *st. */
WEFT_EXTERN WEFT_NODISCARD int weft_file_stat(weft_file *f, struct stat *st);
/* The position used by read and write; set it with weft_file_seek. Never
 * suspend. */
WEFT_EXTERN int64_t weft_file_tell(const weft_file *f);
WEFT_EXTERN void weft_file_seek(weft_file *f, int64_t offset);
/* The path the file was opened with. */
WEFT_EXTERN const char *weft_file_path(const weft_file *f);

/* stat(2), rename(2), unlink(2), mkdir(2), rmdir(2) by path. */
WEFT_EXTERN WEFT_NODISCARD int weft_fs_stat(const char *path, struct stat *st);
WEFT_EXTERN WEFT_NODISCARD int weft_fs_rename(const char *from, const char *to);
WEFT_EXTERN int weft_fs_unlink(const char *path);
WEFT_EXTERN WEFT_NODISCARD int weft_fs_mkdir(const char *path, int mode);
WEFT_EXTERN int weft_fs_rmdir(const char *path);

/* Reads the whole file into *out (freed by the caller with
 * weft_bytes_free). Fails with WEFT_EMSGSIZE, reading nothing more, when the
 * file is larger than `max` bytes (0: no limit). On failure *out is empty. */
WEFT_EXTERN WEFT_NODISCARD int weft_fs_read_file(const char *path,
                                                 weft_bytes *out, size_t max);
/* Writes data[0..len) as the whole content of `path`, created with `mode`
 * (0: 0644) or truncated. Returns 0 or an error (the file may then hold a
 * prefix). */
WEFT_EXTERN WEFT_NODISCARD int
weft_fs_write_file(const char *path, const void *data, size_t len, int mode);

/* ---- line-by-line reading with bounded memory ---- */

typedef struct weft_lines weft_lines;

/* Makes a line reader over `f` (from its current position) that holds at
 * most `max_line` bytes (0: 64 KiB), which is also the longest line it can
 * return. The reader does not own f. Never suspends. Returns 0, WEFT_ENOMEM.
 */
WEFT_EXTERN WEFT_NODISCARD int weft_lines_new(weft_lines **out, weft_file *f,
                                              size_t max_line);
/* Returns the next line in *line / *len, without its '\n' (a last line
 * without one is returned too). *line is valid until the next call. May
 * suspend. Returns 0, WEFT_EOF after the last line, WEFT_ELIMIT for a line
 * longer than max_line (it is skipped: the next call returns the line after
 * it), or a read error. After WEFT_ECANCELED/WEFT_ETIMEDOUT the reader is
 * still usable: no byte was lost. */
WEFT_EXTERN WEFT_NODISCARD int weft_lines_next(weft_lines *r, const char **line,
                                               size_t *len);
/* Frees the reader (not its file). NULL ok. */
WEFT_EXTERN void weft_lines_free(weft_lines *r);

#ifdef __cplusplus
}
#endif

#endif
