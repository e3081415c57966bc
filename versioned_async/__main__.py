from versioned_async.cli import main

main()
