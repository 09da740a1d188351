{
  "targets": [
    {
      "target_name": "rtev_native",
      "sources": ["log.c", "object.c", "links.c", "maps.c", "ring.c", "encode.c", "init.c"],
      "cflags": ["-O2", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11"],
      "libraries": ["-lbpf", "-lelf", "-lz", "-lpthread"]
    }
  ]
}
