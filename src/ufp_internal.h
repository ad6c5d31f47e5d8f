/* SPDX-License-Identifier: MIT */
/*
 * ufp_internal.h - every internal header, for the tests and the fuzzers
 * that reach into the library. The library's own files include only the
 * headers of the layers they use (src/README.md).
 */
#ifndef UFP_INTERNAL_H
#define UFP_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base.h"
#include "rcu.h"
#include "options.h"
#include "stats.h"
#include "thread.h"
#include "vma_locks.h"
#include "region.h"
#include "pager.h"
#include "uffd.h"
#include "pte.h"
#include "pagers.h"
#include "reclaim.h"
#include "mm.h"
#include "removes.h"
#include "fault.h"
#include "delivery.h"
#include "export.h"

#endif /* UFP_INTERNAL_H */
