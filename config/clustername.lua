-- The demo cluster's node table (Skynet's clustername.lua format). Each entry is
-- `name = "host:port"`; `name = false` marks a node down (its calls fail at once).
-- Options start with "__": __nowaiting = true makes calls to unknown nodes fail instead of
-- waiting for a reload to define them. Edit and send SIGHUP to a node to reload it.
demo = "127.0.0.1:7101"
demo2 = "127.0.0.1:7102"
__nowaiting = true
