# `cmake --install <build> --prefix P` (make install PREFIX=P) lays out a modeld that runs
# without the checkout or its .venv:
#   P/bin/modeld, P/bin/modeld-supervisor
#   P/lib/modeld/  the framework libraries from the wheels: those modeld links (LibTorch and
#                  what it needs) and those it opens at run time (TensorFlow, ONNX Runtime;
#                  common/runtime_library.h looks here first)
# modeld's RPATH becomes $ORIGIN/../lib/modeld, ahead of the system folders, so the wheel's
# own libgomp serves LibTorch rather than Debian's. The Debian libraries modeld links (gRPC,
# protobuf, Abseil, hiredis, librabbitmq, spdlog, fmt, OpenSSL) are not copied: the system
# provides them (the Containerfile's runtime stage installs them; README, "Deploy").
# LibTorch's CUDA libraries are not copied either (gigabytes): an installed modeld serves on
# the CPU, and a model placed on a GPU fails to load naming libtorch_cuda.so.
set(MODELD_INSTALL_LIBDIR lib/modeld)
install(TARGETS modeld modeld-supervisor RUNTIME DESTINATION bin)
set_target_properties(modeld PROPERTIES INSTALL_RPATH "\$ORIGIN/../${MODELD_INSTALL_LIBDIR}")

# What modeld opens at run time; their dependencies are copied too (libtensorflow_framework).
set(modeld_runtime_libraries "")
if(MODELD_TENSORFLOW)
  list(APPEND modeld_runtime_libraries ${MODELD_TENSORFLOW_LIBRARY})
endif()
if(MODELD_ONNXRUNTIME_LIBRARY)
  list(APPEND modeld_runtime_libraries ${MODELD_ONNXRUNTIME_LIBRARY})
endif()
# Only libraries from the wheels' folders are copied (the venv's site-packages, or the roots
# given with MODELD_TORCH_ROOT / MODELD_TENSORFLOW_ROOT).
set(modeld_wheel_dirs ${torch_root})
cmake_path(GET torch_root PARENT_PATH modeld_site_packages)
list(APPEND modeld_wheel_dirs ${modeld_site_packages})
foreach(library IN LISTS modeld_runtime_libraries)
  cmake_path(GET library PARENT_PATH folder)
  list(APPEND modeld_wheel_dirs ${folder})
endforeach()

install(CODE "
  set(runtime_libraries \"${modeld_runtime_libraries}\")
  file(GET_RUNTIME_DEPENDENCIES
    EXECUTABLES \"$<TARGET_FILE:modeld>\"
    LIBRARIES \${runtime_libraries}
    RESOLVED_DEPENDENCIES_VAR resolved
    UNRESOLVED_DEPENDENCIES_VAR unresolved)
  set(wheel_dirs \"${modeld_wheel_dirs}\")
  foreach(library IN LISTS runtime_libraries resolved)
    set(from_a_wheel FALSE)
    foreach(folder IN LISTS wheel_dirs)
      cmake_path(IS_PREFIX folder \"\${library}\" NORMALIZE inside)
      if(inside)
        set(from_a_wheel TRUE)
      endif()
    endforeach()
    if(NOT from_a_wheel)
      continue()
    endif()
    file(INSTALL DESTINATION \"\${CMAKE_INSTALL_PREFIX}/${MODELD_INSTALL_LIBDIR}\"
         TYPE SHARED_LIBRARY FOLLOW_SYMLINK_CHAIN FILES \"\${library}\")
  endforeach()
  if(unresolved)
    message(WARNING \"modeld needs libraries the install could not find: \${unresolved}\")
  endif()
")
