#include "test.h"
static const t_case cases[] = {{NULL, NULL}};
T_MAIN("x", cases)
