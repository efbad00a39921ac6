/* A program as a user of the installed package writes it: three tasks that
 * sleep, joined by the main task. The packaging tests build it against the
 * unpacked .deb (pkg-config and find_package, shared and static) and check
 * what it prints. */
#include <stdio.h>
#include <string.h>

#include <weft/weft.h>

static int worker(void *arg) {
  int n = *(const int *)arg;
  int rc = weft_sleep(0.005 * n);
  if (rc != 0)
    return rc;
  return n * 10;
}

static int main_task(void *arg) {
  (void)arg;
  static const int in[3] = {1, 2, 3};
  weft_task *t[3];
  int sum = 0;
  for (int i = 0; i < 3; i++) {
    int rc = weft_spawn(&t[i], worker, (void *)&in[i]);
    if (rc != 0) {
      fprintf(stderr, "weft_spawn: %s\n", weft_strerror(rc));
      return 1;
    }
  }
  for (int i = 0; i < 3; i++) {
    int r = 0;
    int rc = weft_join(t[i], &r);
    if (rc != 0) {
      fprintf(stderr, "weft_join: %s\n", weft_strerror(rc));
      return 1;
    }
    sum += r;
  }
  printf("weft %s: sum %d\n", weft_version(), sum);
  return sum == 60 ? 0 : 1;
}

int main(void) {
  /* The headers and the library must be the same release. */
  if (strcmp(weft_version(), WEFT_VERSION_STRING) != 0) {
    fprintf(stderr, "header %s, library %s\n", WEFT_VERSION_STRING,
            weft_version());
    return 1;
  }
  return weft_run(main_task, NULL);
}
