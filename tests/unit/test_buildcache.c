/* The builder's cache of artifacts (builder/buildcache.h): keys that
 * change with every input that changes an artifact's bytes, hits that
 * return the bytes that were put, eviction of the least recently used by
 * size, and a cache that is off keeping nothing. Through a real back end
 * (compiles skipped, shared, and not cached): test_cc.c. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "builder/buildcache.h"
#include "tests/test.h"

static const char *src_a = "#define N 1000\n#define B 1\n#line 1 \"axpb.c\"\nvoid k(void) {}\n";

static char *words_o2[] = {"gcc", "-O2", NULL};

static buildcache_inputs base_inputs(void) {
  buildcache_inputs in = {.source = src_a,
                          .argv = words_o2,
                          .argc = 2,
                          .compiler_id = "gcc 12.2.0 -O2",
                          .compiler_target = "x86_64-linux-gnu",
                          .target_arch = "x86_64",
                          .exe = NULL};
  return in;
}

static buildcache_key key_of(const buildcache_inputs *in) {
  buildcache_key k;
  ASSERT_EQ_INT(buildcache_key_of(in, &k), 0);
  return k;
}

static int same_key(const buildcache_key *a, const buildcache_key *b) {
  return memcmp(a->b, b->b, sizeof a->b) == 0;
}

TEST(key_covers_every_input) {
  buildcache_inputs in = base_inputs();
  buildcache_key base = key_of(&in), again = key_of(&in);
  ASSERT(same_key(&base, &again));

  /* Each variant changes one thing that changes what the compiler makes. */
  char *words_o3[] = {"gcc", "-O3", NULL};
  char *one_word[] = {"gcc", "-DA=1 -O2", NULL};
  char *two_words[] = {"gcc", "-DA=1", "-O2", NULL};
  enum { NV = 9 };
  buildcache_inputs v[NV];
  for (int i = 0; i < NV; i++) v[i] = base_inputs();
  /* A knob, then a constant. */
  v[0].source = "#define N 1000\n#define B 2\n#line 1 \"axpb.c\"\nvoid k(void) {}\n";
  v[1].source = "#define N 999\n#define B 1\n#line 1 \"axpb.c\"\nvoid k(void) {}\n";
  v[2].argv = words_o3;                      /* the flags */
  v[3].argv = one_word;                      /* one flag ... */
  v[4].argv = two_words;                     /* ... or two, joined alike */
  v[4].argc = 3;
  v[5].compiler_id = "gcc 12.3.0 -O2";       /* the compiler's version */
  v[6].compiler_target = "aarch64-linux-gnu";
  v[7].target_arch = "aarch64";              /* what the runners need */
  v[8].argc = 0;                             /* libtcc: no command */
  v[8].argv = NULL;
  buildcache_key k[NV];
  for (int i = 0; i < NV; i++) {
    k[i] = key_of(&v[i]);
    if (same_key(&k[i], &base)) TEST_FAIL("variant %d has the base's key", i);
    for (int j = 0; j < i; j++)
      if (same_key(&k[i], &k[j])) TEST_FAIL("variants %d and %d have one key", i, j);
  }

  /* The compiler's file: another file, or the same one replaced. */
  char dir[] = "/tmp/ktune-test-bc-XXXXXX", exe[64];
  ASSERT_NOT_NULL(mkdtemp(dir));
  snprintf(exe, sizeof exe, "%s/cc", dir);
  int fd = open(exe, O_CREAT | O_WRONLY | O_EXCL, 0755);
  ASSERT(fd >= 0);
  ASSERT_EQ_INT(write(fd, "v1", 2), 2);
  close(fd);
  in.exe = exe;
  buildcache_key file1 = key_of(&in), file1_again = key_of(&in);
  ASSERT(same_key(&file1, &file1_again));
  ASSERT(!same_key(&file1, &base));
  struct timespec times[2] = {{0, UTIME_OMIT}, {1234567890, 5}};
  ASSERT_EQ_INT(utimensat(AT_FDCWD, exe, times, 0), 0); /* as an upgrade would */
  buildcache_key file2 = key_of(&in);
  ASSERT(!same_key(&file1, &file2));
  unlink(exe);
  rmdir(dir);

  buildcache_inputs bad = base_inputs();
  bad.source = NULL;
  buildcache_key k0;
  ASSERT_EQ_INT(buildcache_key_of(&bad, &k0), -EINVAL);
  bad = base_inputs();
  bad.compiler_id = NULL;
  ASSERT_EQ_INT(buildcache_key_of(&bad, &k0), -EINVAL);
  char hex[13];
  buildcache_key_short(&base, hex);
  ASSERT_EQ_INT(strlen(hex), 12);
}

/* A key of its own for each n. */
static buildcache_key nth_key(int n) {
  char src[32];
  snprintf(src, sizeof src, "int v = %d;", n);
  buildcache_inputs in = base_inputs();
  in.source = src;
  return key_of(&in);
}

static uint8_t *pattern(size_t len, int seed) {
  uint8_t *p = malloc(len);
  ASSERT_NOT_NULL(p);
  for (size_t i = 0; i < len; i++) p[i] = (uint8_t)(i * 31 + (size_t)seed);
  return p;
}

TEST(hit_returns_the_bytes_put) {
  buildcache *c;
  ASSERT_EQ_INT(buildcache_new(1 << 20, &c), 0);
  ASSERT_NOT_NULL(c);
  buildcache_key k = nth_key(1), other = nth_key(2);
  uint8_t *a = pattern(5000, 1), *b = pattern(5000, 2);
  buildcache_entry e;
  ASSERT_EQ_INT(buildcache_get(c, &k, &e), 0);
  ASSERT_NULL(e.artifact);
  ASSERT_EQ_INT(buildcache_put(c, &k, a, 5000, "tcc 0.9.27 -shared -nostdlib", 0.0042), 1);
  ASSERT_EQ_INT(buildcache_get(c, &other, &e), 0);
  ASSERT_EQ_INT(buildcache_get(c, &k, &e), 1);
  ASSERT_EQ_INT(e.len, 5000);
  ASSERT_EQ_INT(memcmp(e.artifact, a, 5000), 0);
  ASSERT_EQ_STR(e.compiler_id, "tcc 0.9.27 -shared -nostdlib");
  ASSERT_EQ_DBL(e.build_s, 0.0042, 0);
  /* A copy: the caller's, whatever the cache does next. */
  ASSERT(e.artifact != a);
  buildcache_entry_clear(&e);
  ASSERT_NULL(e.artifact);

  /* One digest answers with one set of bytes: the first stays (tcc leaves
   * padding uninitialised, so a second compile may differ in it). */
  ASSERT_EQ_INT(buildcache_put(c, &k, b, 5000, "tcc 0.9.27 -shared -nostdlib", 0.5), 1);
  ASSERT_EQ_INT(buildcache_get(c, &k, &e), 1);
  ASSERT_EQ_INT(memcmp(e.artifact, a, 5000), 0);
  ASSERT_EQ_DBL(e.build_s, 0.0042, 0);
  buildcache_entry_clear(&e);

  buildcache_stats st;
  buildcache_get_stats(c, &st);
  ASSERT_EQ_U64(st.hits, 2);
  ASSERT_EQ_U64(st.misses, 2);
  ASSERT_EQ_INT(st.entries, 1);
  /* It counts the whole pages it takes (and a small index entry). */
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t pages = (5000 + sizeof "tcc 0.9.27 -shared -nostdlib" + page - 1) / page * page;
  ASSERT(st.bytes >= pages && st.bytes < pages + 1024);
  /* A miss answered by an identical build under way is not a compile. */
  buildcache_note_shared(c);
  buildcache_get_stats(c, &st);
  ASSERT_EQ_U64(st.misses, 1);
  ASSERT_EQ_U64(st.shared, 1);
  free(a);
  free(b);
  buildcache_free(c);
}

TEST(lru_evicts_by_size) {
  /* Three artifacts of 8 pages fit in 24 pages and a bit; a fourth does not. */
  size_t page = (size_t)sysconf(_SC_PAGESIZE), len = 7 * page + 100, max = 24 * page + 1024;
  buildcache *c;
  ASSERT_EQ_INT(buildcache_new(max, &c), 0);
  uint8_t *p[5];
  buildcache_key k[5];
  for (int i = 0; i < 5; i++) {
    p[i] = pattern(len, i);
    k[i] = nth_key(i);
  }
  for (int i = 0; i < 3; i++) ASSERT_EQ_INT(buildcache_put(c, &k[i], p[i], len, "cc", 0.1), 1);
  buildcache_entry e;
  ASSERT_EQ_INT(buildcache_get(c, &k[0], &e), 1); /* 0 is now the most recent; 1 the least */
  buildcache_entry_clear(&e);
  ASSERT_EQ_INT(buildcache_put(c, &k[3], p[3], len, "cc", 0.1), 1);
  buildcache_stats st;
  buildcache_get_stats(c, &st);
  ASSERT_EQ_U64(st.evicted, 1);
  ASSERT_EQ_INT(st.entries, 3);
  ASSERT(st.bytes <= max && st.max_bytes == max);
  ASSERT_EQ_INT(buildcache_get(c, &k[1], &e), 0);
  int want[] = {0, 2, 3};
  for (int i = 0; i < 3; i++) {
    ASSERT_EQ_INT(buildcache_get(c, &k[want[i]], &e), 1);
    ASSERT_EQ_INT(e.len, len);
    ASSERT_EQ_INT(memcmp(e.artifact, p[want[i]], len), 0);
    buildcache_entry_clear(&e);
  }
  /* Larger than the whole cache: not kept, and nothing is evicted for it. */
  uint8_t *big = pattern(max + 1, 9);
  ASSERT_EQ_INT(buildcache_put(c, &k[4], big, max + 1, "cc", 0.1), 0);
  buildcache_get_stats(c, &st);
  ASSERT_EQ_INT(st.entries, 3);
  ASSERT_EQ_U64(st.evicted, 1);
  free(big);
  for (int i = 0; i < 5; i++) free(p[i]);
  buildcache_free(c);
}

TEST(many_entries_stay_findable) {
  /* Past the first table size: it grows, and every key still answers. */
  buildcache *c;
  ASSERT_EQ_INT(buildcache_new((size_t)1 << 30, &c), 0);
  enum { n = 5000 };
  for (int i = 0; i < n; i++) {
    buildcache_key k = nth_key(i);
    uint8_t v[8];
    memcpy(v, &i, sizeof i);
    memcpy(v + 4, &i, sizeof i);
    ASSERT_EQ_INT(buildcache_put(c, &k, v, sizeof v, "cc", 0), 1);
  }
  for (int i = 0; i < n; i++) {
    buildcache_key k = nth_key(i);
    buildcache_entry e;
    ASSERT_EQ_INT(buildcache_get(c, &k, &e), 1);
    ASSERT_EQ_INT(e.len, 8);
    int got;
    memcpy(&got, e.artifact + 4, sizeof got);
    ASSERT_EQ_INT(got, i);
    buildcache_entry_clear(&e);
  }
  buildcache_stats st;
  buildcache_get_stats(c, &st);
  ASSERT_EQ_INT(st.entries, n);
  ASSERT_EQ_U64(st.evicted, 0);

  /* Past the cap on entries, the oldest go even with bytes to spare. */
  for (int i = n; i < BUILDCACHE_MAX_ENTRIES + 10; i++) {
    buildcache_key k = nth_key(i);
    ASSERT_EQ_INT(buildcache_put(c, &k, (const uint8_t *)"x", 1, "cc", 0), 1);
  }
  buildcache_get_stats(c, &st);
  ASSERT_EQ_INT(st.entries, BUILDCACHE_MAX_ENTRIES);
  ASSERT_EQ_U64(st.evicted, 10);
  buildcache_key first = nth_key(0), last = nth_key(BUILDCACHE_MAX_ENTRIES + 9);
  buildcache_entry e;
  ASSERT_EQ_INT(buildcache_get(c, &first, &e), 0);
  ASSERT_EQ_INT(buildcache_get(c, &last, &e), 1);
  buildcache_entry_clear(&e);
  buildcache_free(c);
}

static long rss_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  ASSERT_NOT_NULL(f);
  char line[256];
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0) kb = atol(line + 6);
  fclose(f);
  return kb;
}

/* Every compile is a fork: a cache that children inherited would make
 * each fork copy its page tables (and show other sessions' artifacts to
 * a libtcc worker). A child has none of its 48 MiB. */
TEST(children_do_not_inherit_the_cache) {
  buildcache *c;
  ASSERT_EQ_INT(buildcache_new(64u << 20, &c), 0);
  enum { n = 48, len = 1 << 20 };
  uint8_t *p = pattern(len, 3);
  for (int i = 0; i < n; i++) {
    buildcache_key k = nth_key(i);
    p[0] = (uint8_t)i;
    ASSERT_EQ_INT(buildcache_put(c, &k, p, len, "cc", 0), 1);
  }
  free(p);
  long parent = rss_kb();
  int fds[2];
  ASSERT_EQ_INT(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT(pid >= 0);
  if (pid == 0) {
    long kb = rss_kb();
    _exit(write(fds[1], &kb, sizeof kb) == sizeof kb ? 0 : 1);
  }
  long child = -1;
  ASSERT_EQ_INT(read(fds[0], &child, sizeof child), sizeof child);
  ASSERT_EQ_INT(waitpid(pid, NULL, 0), pid);
  close(fds[0]);
  close(fds[1]);
  if (child > parent - 40 * 1024)
    TEST_FAIL("a child holds %ld kB, its parent with the cache %ld kB", child, parent);
  buildcache_key k = nth_key(n - 1);
  buildcache_entry e;
  ASSERT_EQ_INT(buildcache_get(c, &k, &e), 1); /* the parent's is whole */
  ASSERT_EQ_INT(e.artifact[0], n - 1);
  buildcache_entry_clear(&e);
  buildcache_free(c);
}

TEST(off_keeps_nothing) {
  buildcache *c = (buildcache *)1;
  ASSERT_EQ_INT(buildcache_new(0, &c), 0);
  ASSERT_NULL(c);
  buildcache_key k = nth_key(1);
  uint8_t a[16] = {1, 2, 3};
  ASSERT_EQ_INT(buildcache_put(c, &k, a, sizeof a, "cc", 0.1), 0);
  buildcache_entry e;
  ASSERT_EQ_INT(buildcache_get(c, &k, &e), 0);
  ASSERT_NULL(e.artifact);
  buildcache_note_shared(c);
  buildcache_stats st;
  buildcache_get_stats(c, &st);
  ASSERT_EQ_U64(st.hits + st.misses + st.shared + st.entries + st.bytes + st.max_bytes, 0);
  buildcache_free(c);
}

TEST_LIST(TEST_ENTRY(key_covers_every_input), TEST_ENTRY(hit_returns_the_bytes_put),
          TEST_ENTRY(lru_evicts_by_size), TEST_ENTRY(many_entries_stay_findable),
          TEST_ENTRY(children_do_not_inherit_the_cache), TEST_ENTRY(off_keeps_nothing))
