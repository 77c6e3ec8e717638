/* logger: see logger.h. Runs on whichever worker dispatches it; log_text does the locking. */
#include "logger.h"

#include "log.h"
#include "service.h"

#include <stdlib.h>
#include <string.h>

static int logger_cb(struct service *s, void *ud, int type, int session, uint32_t source, void *msg,
                     size_t size)
{
    (void)ud;
    if (type == PTYPE_TEXT) {
        log_text(source, LOG_INFO, msg ? msg : "", msg ? size : 0);
    } else if (session != 0 && type != PTYPE_RESPONSE && type != PTYPE_ERROR) {
        /* no caller waits forever on us: requests (the debug protocol, say) get an error */
        static const char why[] = "the logger answers no requests";
        char *text = malloc(sizeof why - 1);
        if (text)
            memcpy(text, why, sizeof why - 1);
        service_send(service_handle(s), source, PTYPE_ERROR, session, text,
                     text ? sizeof why - 1 : 0);
    }
    return 0;
}

static int logger_init(void *inst, struct service *s, const char *args)
{
    (void)inst, (void)args;
    service_callback(s, logger_cb, NULL);
    return 0;
}

const struct service_module logger_module = {"logger", NULL, logger_init, NULL, NULL};
