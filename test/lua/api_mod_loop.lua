-- api_mod_loop: a module that requires itself while it loads (t_api): a circular dependency.
return require "api_mod_loop"
