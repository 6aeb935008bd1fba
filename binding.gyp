{
  "targets": [
    {
      "target_name": "pr_native",
      "sources": [
        "native/addon.c",
        "native/helpers.c",
        "native/sockets.c",
        "native/descriptors.c",
        "native/poll.c",
        "native/sgio.c",
        "native/notify.c",
        "native/credentials.c"
      ],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O2", "-U_FORTIFY_SOURCE", "-D_FORTIFY_SOURCE=2", "-fstack-protector-strong"],
      "ldflags": ["-Wl,-z,relro", "-Wl,-z,now"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
