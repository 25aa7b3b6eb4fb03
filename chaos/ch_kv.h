/* ch_kv.h — `rift kv --run RUN_DIR get|put|del KEY [VALUE]`: poke a live cluster.
 *
 * Attaches to a client node's rift-stackd of a running dpdk-backend run (its
 * Unix socket is in RUN_DIR/nodes/c1/), connects to every replica, and sends
 * one command through the log like any workload client: redirects are
 * followed, the command is resent with the same session (client id, seq) on
 * timeouts, so it executes at most once. */
#ifndef CH_KV_H
#define CH_KV_H

/* argv as after "kv". Returns an exit code: 0 ok, 1 the command failed (cas
 * mismatch), 2 bad usage, 3 no live cluster / no answer. */
int ch_kv_main(int argc, char **argv);

#endif
