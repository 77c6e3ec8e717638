-- svc_main_raises: its main chunk raises before skynet.start.
error("main chunk went wrong")
