/* sim_client.c — the workload engine over the simulator: endpoints, one timer,
 * a forked PRNG, and history folded into the run's hash. */
#include "sim_client.h"

#include <errno.h>
#include <stdlib.h>

#define SIM_SALT_WORKLOAD 0x776f726bULL /* "work" */

struct sim_workload {
    sim *s;
    rift_rng rng;
    wl_client *wl;
    sim_timer *timer;
    uint32_t n_attached;   /* endpoints 0..n_attached-1 are ours to detach */
    sim_hist_fn on_hist;
    void *on_hist_ctx;
};

const char *sim_hist_type_name(int type)
{
    return wl_hist_type_name(type);
}

const char *sim_hist_f_name(int op)
{
    return wl_hist_f_name(op);
}

void sim_workload_config_default(sim_workload_config *c)
{
    wl_config_default(c);
}

/* ---- the engine's environment ---- */

static uint64_t env_now(void *ctx)
{
    sim_workload *w = ctx;
    return sim_now_us(w->s);
}

static void env_send(void *ctx, const px_msg *m)
{
    sim_workload *w = ctx;
    sim_send(w->s, m); /* a lost request is the engine's to retry */
}

static void env_arm(void *ctx, uint64_t at_us)
{
    sim_workload *w = ctx;
    if (at_us == UINT64_MAX)
        sim_timer_cancel(w->timer);
    else
        sim_timer_set(w->timer, at_us);
}

static void on_timer(void *ctx, uint64_t now_us)
{
    (void)now_us;
    sim_workload *w = ctx;
    wl_timer(w->wl);
}

static void on_recv(void *ctx, const px_msg *m, uint64_t now_us)
{
    (void)now_us;
    sim_workload *w = ctx;
    wl_recv(w->wl, m);
}

/* Every record shapes the run: fold it into the hash, then pass it on. */
static void on_hist(void *ctx, const wl_hist *h)
{
    sim_workload *w = ctx;
    sim_hash_fold(w->s, (h->process << 8) | ((uint64_t)h->type << 4) | h->f);
    sim_hash_fold(w->s, h->time_us);
    sim_hash_fold(w->s, h->value ? px_hash64(h->value_len, h->value, h->value_len) : 0x6e756c6cULL);
    if (w->on_hist)
        w->on_hist(w->on_hist_ctx, h);
}

/* ---- set-up ---- */

sim_workload *sim_workload_new(sim *s, const sim_workload_config *c, int *err)
{
    int rc = -ENOMEM;
    sim_workload *w = calloc(1, sizeof(*w));
    if (!w)
        goto fail;
    w->s = s;
    sim_rng_fork(s, SIM_SALT_WORKLOAD, &w->rng);
    wl_config wc = *c;
    wc.n_replicas = sim_n_replicas(s);
    wc.first_client = 0;
    wc.client_step = 1;
    wc.total_clients = wc.n_clients;
    wl_env env = {.ctx = w, .now_us = env_now, .send = env_send, .arm = env_arm, .rng = &w->rng};
    w->timer = sim_timer_new(s, on_timer, w);
    if (!w->timer)
        goto fail;
    w->wl = wl_new(&wc, &env, &rc);
    if (!w->wl)
        goto fail;
    wl_on_history(w->wl, on_hist, w);
    for (uint32_t i = 0; i < wl_n_clients(w->wl); i++) {
        rc = sim_attach(s, wl_client_addr(w->wl, i), on_recv, w);
        if (rc < 0)
            goto fail;
        w->n_attached++;
    }
    return w;
fail:
    sim_workload_free(w);
    if (err)
        *err = rc;
    return NULL;
}

void sim_workload_free(sim_workload *w)
{
    if (!w)
        return;
    for (uint32_t i = 0; i < w->n_attached; i++)
        sim_detach(w->s, wl_client_addr(w->wl, i));
    sim_timer_free(w->timer);
    wl_free(w->wl);
    free(w);
}

void sim_workload_on_history(sim_workload *w, sim_hist_fn fn, void *ctx)
{
    w->on_hist = fn;
    w->on_hist_ctx = ctx;
}

int sim_workload_start(sim_workload *w)
{
    return wl_start(w->wl);
}

void sim_workload_stop(sim_workload *w)
{
    wl_stop(w->wl);
}

uint32_t sim_workload_outstanding(const sim_workload *w)
{
    return wl_outstanding(w->wl);
}

void sim_workload_counters_get(const sim_workload *w, sim_workload_counters *out)
{
    wl_counters_get(w->wl, out);
}
