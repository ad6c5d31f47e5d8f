/* SPDX-License-Identifier: MIT */
/*
 * delivery.h - the two fault deliveries: the handler pool (uffd_loop.c) and
 * self-paging (sigbus.c); foreign events (events.c).
 */
#ifndef UFP_DELIVERY_H
#define UFP_DELIVERY_H

#include "base.h"
#include "uffd_compat.h"

struct ufp_pager;
struct uffd_msg;

/* uffd_loop.c: the handler pool (handler delivery) or the event reader */
int uffd_start_threads(struct ufp_pager *p);
void uffd_stop_threads(struct ufp_pager *p);
/* events.c: foreign events; events_handle queues one (any reader thread) */
int events_start(struct ufp_pager *p);
void events_stop(struct ufp_pager *p);
void events_handle(struct ufp_pager *p, const struct uffd_msg *m);
/* sigbus.c: self-paging */
int sigbus_install(struct ufp_pager *p);
/* SIGBUS passed on to the application (process-wide count). */
uint64_t sigbus_foreign_count(void);
void sigbus_remove(struct ufp_pager *p);

#endif /* UFP_DELIVERY_H */
