from ociruntime.cli import main

main()
