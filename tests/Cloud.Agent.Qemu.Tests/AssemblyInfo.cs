// These tests run QEMU for real, which the project does on Linux (Windows is covered by unit tests of the command line).
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
