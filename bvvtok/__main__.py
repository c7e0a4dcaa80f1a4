from bvvtok.cli import main

main()
