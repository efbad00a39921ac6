/* weft-queue — the guide's producer/consumer scenario over a bounded queue.
 *
 * Producers put numbered items into a queue of fixed capacity; when it is
 * full they wait (backpressure), so memory stays bounded however fast they
 * are. Consumers take items, "process" each (a short sleep standing in for
 * I/O), and mark it done. Main waits for the producers, then joins the queue
 * (every item processed), then closes it: the consumers' next get fails with
 * WEFT_ECLOSED and they return. Nothing is cancelled, nothing is lost.
 */
#include <weft/weft.h>

#include "app.h"

static struct {
  int producers, consumers, items; /* items per producer */
  int capacity;
  double work; /* seconds a consumer spends on one item */
  bool tour;
} cfg = {4, 3, 250, 10, 0.001, false};

static weft_queue *q;
static unsigned char *seen; /* times each item was consumed */
static size_t max_len;      /* the most items ever waiting in the queue */
static size_t puts_waited;  /* puts that found the queue full */
static int consumed;

static int producer(void *arg) {
  int first = (int)(intptr_t)arg * cfg.items;
  for (int i = 0; i < cfg.items; i++) {
    if (weft_queue_len(q) >= (size_t)cfg.capacity)
      puts_waited++;
    /* Items are plain integers smuggled in the pointer. */
    int rc = weft_queue_put(q, (void *)(intptr_t)(first + i));
    if (rc != 0)
      return rc;
    if (weft_queue_len(q) > max_len)
      max_len = weft_queue_len(q);
  }
  return 0;
}

static int consumer(void *arg) {
  (void)arg;
  for (;;) {
    void *item;
    int rc = weft_queue_get(q, &item);
    if (rc == WEFT_ECLOSED)
      return 0; /* closed and drained: the clean way out */
    if (rc != 0)
      return rc;
    rc = weft_sleep(cfg.work);
    seen[(intptr_t)item]++;
    consumed++;
    /* Done even when the work failed: join must not wait forever. */
    (void)weft_queue_task_done(q);
    if (rc != 0)
      return rc;
  }
}

static int amain(void *arg) {
  (void)arg;
  int total = cfg.producers * cfg.items;
  seen = calloc((size_t)total, 1);
  weft_group *prod, *cons;
  int rc;
  if (seen == NULL)
    return WEFT_ENOMEM;
  if ((rc = weft_queue_new(&q, (size_t)cfg.capacity)) != 0)
    goto out_seen;
  if ((rc = weft_group_new(&prod)) != 0)
    goto out_queue;
  if ((rc = weft_group_new(&cons)) != 0)
    goto out_prod;

  printf("weft-queue: %d producers x %d items -> queue of %d -> %d consumers "
         "(%.1f ms of work per item)\n",
         cfg.producers, cfg.items, cfg.capacity, cfg.consumers, cfg.work * 1e3);
  double t0 = weft_now();
  for (int i = 0; i < cfg.consumers && rc == 0; i++)
    rc = weft_group_spawn(cons, NULL, consumer, NULL);
  for (int i = 0; i < cfg.producers && rc == 0; i++)
    rc = weft_group_spawn(prod, NULL, producer, (void *)(intptr_t)i);
  if (rc == 0)
    rc = weft_group_wait(prod); /* everything is in the queue */
  if (rc == 0)
    rc = weft_queue_join(q); /* ... and processed */
  double took = weft_now() - t0;
  weft_queue_close(q); /* consumers drain out and return */
  int crc = weft_group_wait(cons);
  if (rc == 0)
    rc = crc;
  if (rc != 0) {
    fprintf(stderr, "weft-queue: %s\n", weft_strerror(rc));
    goto out;
  }

  int once = 0;
  for (int i = 0; i < total; i++)
    once += seen[i] == 1;
  double serial = total * cfg.work;
  printf("  %d items put, %d consumed, %d exactly once\n", total, consumed,
         once);
  printf("  at most %zu items waited in the queue (capacity %d); %zu puts "
         "waited for room\n",
         max_len, cfg.capacity, puts_waited);
  printf("  %.3f s in all (%.3f s of work spread over %d consumers), "
         "%.0f items/s\n",
         took, serial, cfg.consumers, total / took);
  bool lossless = consumed == total && once == total;
  bool bounded = max_len <= (size_t)cfg.capacity;
  /* Sleeps overlap, so the consumers finish far sooner than one would;
   * timer granularity (about 1 ms) is the slack. */
  bool parallel = took < serial / cfg.consumers * 2 + 0.05;
  if (cfg.tour) {
    app_row("join returns once every queued item is processed", lossless,
            "%d put, %d processed, each exactly once", total, once);
    app_row("a bounded queue holds fast producers back", bounded,
            "at most %zu of %d queued; %zu puts waited", max_len, cfg.capacity,
            puts_waited);
    app_row("consumers process items concurrently", parallel,
            "%.3f s for %.3f s of work on %d consumers", took, serial,
            cfg.consumers);
    app_row("close ends the consumers cleanly", crc == 0,
            "%d consumers returned after close", cfg.consumers);
  }
  rc = lossless && bounded && parallel ? 0 : 1;
out:
  weft_group_free(cons);
out_prod:
  weft_group_free(prod);
out_queue:
  weft_queue_free(q);
out_seen:
  free(seen);
  return rc;
}

static void usage(const char *prog) {
  printf("usage: %s [--producers N] [--consumers N] [--items N] "
         "[--capacity N] [--work-ms MS] [--tour]\n"
         "  Producers and consumers over a bounded weft_queue, with clean\n"
         "  shutdown through task_done/join and close.\n"
         "  --producers N  producer tasks (default 4)\n"
         "  --consumers N  consumer tasks (default 3)\n"
         "  --items N      items each producer puts (default 250)\n"
         "  --capacity N   queue bound (default 10)\n"
         "  --work-ms MS   time a consumer spends on an item (default 1)\n"
         "  --tour         rows for weft-tour\n",
         prog);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(argv[0]);
      return 0;
    } else if (strcmp(a, "--producers") == 0) {
      cfg.producers = (int)app_num(argc, argv, &i, 1, 100000);
    } else if (strcmp(a, "--consumers") == 0) {
      cfg.consumers = (int)app_num(argc, argv, &i, 1, 100000);
    } else if (strcmp(a, "--items") == 0) {
      cfg.items = (int)app_num(argc, argv, &i, 1, 10000000);
    } else if (strcmp(a, "--capacity") == 0) {
      cfg.capacity = (int)app_num(argc, argv, &i, 1, 10000000);
    } else if (strcmp(a, "--work-ms") == 0) {
      cfg.work = app_num(argc, argv, &i, 0, 10000) / 1e3;
    } else if (strcmp(a, "--tour") == 0) {
      cfg.tour = true;
    } else {
      app_bad_arg(argv[0], a);
    }
  }
  if ((double)cfg.producers * cfg.items > 1e8) {
    fprintf(stderr, "%s: at most 100 000 000 items in all\n", argv[0]);
    return 2;
  }
  int rc = weft_run(amain, NULL);
  if (rc < 0) {
    fprintf(stderr, "weft-queue: %s\n", weft_strerror(rc));
    return 1;
  }
  return rc;
}
