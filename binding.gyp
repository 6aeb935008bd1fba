{
  "targets": [
    {
      "target_name": "pr_native",
      "sources": ["native/pr_native.c", "native/thread-credentials.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O2"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
