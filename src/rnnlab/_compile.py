"""Compiler options shared by rnnlab's one-off programs."""

# For programs that run once and are cheap to run (the analysis' keys, candidate indices and
# trial draw): compiled without LLVM's optimisation passes and with XLA's elemental IR emitter
# instead of its MLIR fusion emitters, which build an MLIR context and a pool of compilers for
# each program. Integer work gives the same bits; float work can differ in its last bits.
QUICK_COMPILE = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}
