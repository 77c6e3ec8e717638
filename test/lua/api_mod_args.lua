-- api_mod_args: a module that returns the arguments require passed its body (t_api).
return { ... }
