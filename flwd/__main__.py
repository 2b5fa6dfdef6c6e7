from flwd._entry import main

main()
