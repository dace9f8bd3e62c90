FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY . .
RUN dotnet publish controller/Cloud.Controller -c Release -o /out

FROM mcr.microsoft.com/dotnet/aspnet:10.0
WORKDIR /app
COPY --from=build /out .
# The image store (Images:StorePath) and the CA folder (Trust:Directory, ca.pem and ca.key);
# a volume mounted here keeps this owner. The CA key is the cloud's most valuable secret:
# mount it from a secret, readable by this user only (docs/security.md).
RUN mkdir -p /var/lib/cloud/images /var/lib/cloud/trust && chown app /var/lib/cloud/images /var/lib/cloud/trust \
    && chmod 700 /var/lib/cloud/trust
USER app
ENTRYPOINT ["dotnet", "Cloud.Controller.dll"]
