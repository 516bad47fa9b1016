from cdp_spark.cli import main

main()
