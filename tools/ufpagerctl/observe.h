/* SPDX-License-Identifier: MIT */
/* observe.h - ufpagerctl stats and top. */
#ifndef UFPAGERCTL_OBSERVE_H
#define UFPAGERCTL_OBSERVE_H
int cmd_stats(int argc, char **argv);
int cmd_top(int argc, char **argv);
#endif
