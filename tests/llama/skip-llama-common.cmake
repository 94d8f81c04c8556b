# Passed to the llama-cpp-python build by tests/llama/install.sh as -DCMAKE_PROJECT_llama.cpp_INCLUDE=<this file>:
# CMake runs it at the end of llama.cpp's own `project("llama.cpp" ...)` call, after llama-cpp-python's
# CMakeLists has forced LLAMA_BUILD_COMMON ON and before llama.cpp reads the option. The Python bindings load only
# libllama and libggml*; libllama-common (chat parsers, arg parsing, jinja, downloads: ~60 of 140 compile steps,
# about two thirds of the build time on 2 cores) is for llama.cpp's own tools and multimodal (LLAVA_BUILD), which
# this build also leaves out. If a future llama.cpp renames its project, this file is simply not run.
set(LLAMA_BUILD_COMMON OFF CACHE BOOL "llama: build common utils library" FORCE)
