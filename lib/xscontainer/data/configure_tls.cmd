@echo off
rem xscontainer: let the control domain manage Docker in this Windows VM over
rem mutual TLS on TCP port 2376. xscontainer-prepare-vm --mode tls wrote this
rem script to the "Container TLS" CD; run it from there as administrator.
rem Steps: check for administrator rights; copy the CA and server certificate
rem and key to %ProgramData%\docker\certs.d (Administrators and SYSTEM only);
rem install daemon.json into %ProgramData%\docker\config (an existing one is
rem kept as daemon.json.before-xscontainer); restart the Docker service; show
rem the firewall state and the rule the control domain needs.
setlocal EnableExtensions
set "SRC=%~dp0"
set "DOCKERDATA=%ProgramData%\docker"
set "CERTS=%ProgramData%\docker\certs.d"
set "CONFIG=%ProgramData%\docker\config"

net session >nul 2>&1
if errorlevel 1 (
  echo Error: run this script as administrator ^(right-click it, Run as administrator^).
  exit /b 1
)
if not exist "%DOCKERDATA%\" (
  echo Error: %DOCKERDATA% does not exist. Install Docker first, then run this script again.
  exit /b 1
)
for %%F in (ca.pem server-cert.pem server-key.pem) do (
  if not exist "%SRC%server\%%F" (
    echo Error: %SRC%server\%%F is missing. Run this script from the Container TLS CD.
    exit /b 1
  )
)

echo Installing the certificates into %CERTS% (readable by Administrators and SYSTEM only).
if not exist "%CERTS%\" mkdir "%CERTS%" || goto failed
icacls "%CERTS%" /inheritance:r /grant:r "*S-1-5-32-544:(OI)(CI)F" "*S-1-5-18:(OI)(CI)F" >nul || goto failed
copy /y "%SRC%server\ca.pem" "%CERTS%\ca.pem" >nul || goto failed
copy /y "%SRC%server\server-cert.pem" "%CERTS%\server-cert.pem" >nul || goto failed
copy /y "%SRC%server\server-key.pem" "%CERTS%\server-key.pem" >nul || goto failed
icacls "%CERTS%\*" /reset >nul || goto failed

echo Installing daemon.json into %CONFIG%.
if not exist "%CONFIG%\" mkdir "%CONFIG%" || goto failed
if exist "%CONFIG%\daemon.json" call :keep_old_config || goto failed
copy /y "%SRC%daemon.json" "%CONFIG%\daemon.json" >nul || goto failed

echo Restarting the Docker service (running containers stop; those with a restart policy come back).
net stop docker >nul 2>&1
net start docker
if errorlevel 1 goto docker_failed

echo.
echo Docker now serves mutual TLS on TCP port 2376 (and the local named pipe as before).
echo The control domain must reach port 2376. If Windows Firewall is on for this
echo network, allow it, for example with:
echo   netsh advfirewall firewall add rule name="Docker TLS (xscontainer)" dir=in action=allow protocol=TCP localport=2376
netsh advfirewall show allprofiles state
echo.
echo Done. Complete the preparation on the control domain console; it ejects this CD.
exit /b 0

:keep_old_config
fc /b "%CONFIG%\daemon.json" "%SRC%daemon.json" >nul 2>&1
if not errorlevel 1 exit /b 0
copy /y "%CONFIG%\daemon.json" "%CONFIG%\daemon.json.before-xscontainer" >nul || exit /b 1
echo Note: the previous daemon.json is now daemon.json.before-xscontainer; merge any
echo other settings from it into daemon.json and restart Docker.
exit /b 0

:docker_failed
echo Error: the Docker service did not start with the new configuration. See the
echo Application event log (source docker). If the service was registered with -H or
echo --tls options, they clash with daemon.json: re-register it without them
echo ^(dockerd --unregister-service, then dockerd --register-service^) and run this script again.
exit /b 1

:failed
echo Error: the last command failed with errorlevel %errorlevel%; the steps after it were not done.
exit /b 1
