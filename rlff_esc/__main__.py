from rlff_esc.cli import main

main()
