// Makes the library importable as `shadowkv_engine._C`: importing it runs the TORCH_LIBRARY
// static registrations of torch_bindings.cpp; the module itself has no attributes.
#include <Python.h>

#define SHADOWKV_CONCAT(a, b) a##b
#define SHADOWKV_INIT(name) SHADOWKV_CONCAT(PyInit_, name)

PyMODINIT_FUNC SHADOWKV_INIT(TORCH_EXTENSION_NAME)(void) {
  static PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}
