"""Trust: explanations, guards, calibrated confidence and out-of-distribution flags, monitoring and audit.

Every piece here speaks :mod:`lmkernel.trust.findings`: a guard, a model-based flag or a monitor
rule reports a :class:`~lmkernel.trust.findings.Finding`, so the CLI, the server, the monitor and the
audit log print and count them one way.
"""
