/* ktune token new ROLE NAME: a line for the tracker's --tokens file, so
 * that nobody has to invent a token by hand. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

/* 32 random bytes: the whole strength of a token. */
#define TOKEN_BYTES 32

static const char *const token_roles[] = {"admin", "client", "builder", "runner"};

static void usage(FILE *f) {
  fprintf(f, "usage: ktune token new ROLE NAME\n"
             "\n"
             "Prints `ROLE NAME TOKEN`, a line for the tracker's --tokens file, with a fresh\n"
             "random token (%d bytes from libsodium, base64url). ROLE is admin, client,\n"
             "builder or runner; NAME is who uses it (an agent's --name, a user's KTUNE_USER):\n"
             "1 to %d printable characters without spaces. Give the token to that one alone\n"
             "(KTUNE_TOKEN_FILE, or --token-file for agents).\n",
          TOKEN_BYTES, CLI_KEY_MAX);
}

static int known_role(const char *role) {
  for (size_t i = 0; i < sizeof(token_roles) / sizeof(token_roles[0]); i++)
    if (!strcmp(role, token_roles[i])) return 1;
  return 0;
}

int cmd_token(int argc, char **argv) {
  if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
    usage(stdout);
    return EXIT_OK;
  }
  if (argc != 4 || strcmp(argv[1], "new") != 0) {
    usage(stderr);
    return EXIT_USAGE;
  }
  if (!known_role(argv[2])) {
    fprintf(stderr, "ktune token: ROLE is admin, client, builder or runner, not '%s'\n", argv[2]);
    return EXIT_USAGE;
  }
  if (cli_check_label("token", "NAME", argv[3]) < 0) return EXIT_USAGE;
  if (sodium_init() < 0) {
    fprintf(stderr, "ktune token: libsodium does not start\n");
    return EXIT_FAIL;
  }
  unsigned char raw[TOKEN_BYTES];
  char token[sodium_base64_ENCODED_LEN(TOKEN_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
  randombytes_buf(raw, sizeof(raw));
  sodium_bin2base64(token, sizeof(token), raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  printf("%s %s %s\n", argv[2], argv[3], token);
  sodium_memzero(raw, sizeof(raw));
  sodium_memzero(token, sizeof(token));
  return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}
