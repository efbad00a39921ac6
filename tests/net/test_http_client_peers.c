#include "test_http_client_util.h"
static const t_case cases[] = {{NULL, NULL}};
T_MAIN("http-client_peers", cases)
