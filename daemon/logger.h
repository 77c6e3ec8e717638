/* logger: the "logger" service module (handle :00000001, name ".logger"): writes each TEXT
 * message it receives as a log line from the message's source, for services that log by
 * sending to ".logger" as in Skynet. */
#ifndef SKYJET_LOGGER_H
#define SKYJET_LOGGER_H

extern const struct service_module logger_module;

#endif
