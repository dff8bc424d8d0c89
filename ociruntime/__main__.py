from ociruntime import main

main()
