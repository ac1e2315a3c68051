<?php
// A script with a bug: calling an undefined function is a PHP fatal error (exit status 255).
echo "broken_report: starting\n";
build_the_report(date('Y-m-d'));
echo "never printed\n";
