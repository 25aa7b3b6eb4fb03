/* ch_error.h — the controller's error value: a message for the user.
 *
 * Shared by every chaos/ch_* module (scenario, history, ...) so each can include
 * it without clashing. Functions return a negative errno and fill msg. */
#ifndef CH_ERROR_H
#define CH_ERROR_H

typedef struct ch_error { char msg[512]; } ch_error;

#endif
